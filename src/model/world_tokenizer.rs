//! The RWKV "World" tokenizer (`rwkv_vocab_v20230424.txt`, shipped with the RWKV6 Finch
//! checkpoints): a vocabulary of byte strings matched greedily, longest first, over the text's
//! UTF-8 bytes, as the `rwkv` package's `TRIE_TOKENIZER` does. Token 0 is the end of text.
//!
//! No well-kept Rust crate implements it (the `rwkv-tokenizer` crates are single-author ports
//! without releases past 2024), and the algorithm is a trie walk.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The vocabulary file name the released checkpoints ship.
pub const VOCAB_FILE: &str = "rwkv_vocab_v20230424.txt";

/// The World tokenizer: each id's bytes and a trie over them.
#[derive(Debug, Clone)]
pub struct WorldTokenizer {
    /// `tokens[id]`: the bytes of token `id` (empty for id 0, the end of text).
    tokens: Vec<Vec<u8>>,
    /// Trie nodes; node 0 is the root.
    nodes: Vec<TrieNode>,
    path: PathBuf,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// `(byte, child node)`, sorted by byte.
    children: Vec<(u8, u32)>,
    token: Option<u32>,
}

impl WorldTokenizer {
    /// Reads a vocabulary file: one `id repr length` line per token, `repr` a Python `str` or
    /// `bytes` literal whose UTF-8 (or raw) bytes are `length` long.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        let bad = |line: usize, message: String| Error::BadFile {
            path: path.to_path_buf(),
            message: format!("line {line}: {message}"),
        };
        let mut tokens: Vec<Vec<u8>> = vec![Vec::new()];
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let number = index + 1;
            let (id, rest) = line
                .split_once(' ')
                .ok_or_else(|| bad(number, "expected `id repr length`".into()))?;
            let (repr, length) = rest
                .rsplit_once(' ')
                .ok_or_else(|| bad(number, "expected `id repr length`".into()))?;
            let id: usize = id
                .parse()
                .map_err(|_| bad(number, format!("`{id}` is not a token id")))?;
            let length: usize = length
                .parse()
                .map_err(|_| bad(number, format!("`{length}` is not a length")))?;
            let bytes = python_literal(repr).map_err(|m| bad(number, m))?;
            if bytes.len() != length {
                return Err(bad(
                    number,
                    format!("{repr} is {} bytes, the line says {length}", bytes.len()),
                ));
            }
            if id == 0 || bytes.is_empty() {
                return Err(bad(number, "id 0 and empty tokens are reserved".into()));
            }
            if id >= tokens.len() {
                tokens.resize(id + 1, Vec::new());
            }
            if !tokens[id].is_empty() {
                return Err(bad(number, format!("token id {id} appears twice")));
            }
            tokens[id] = bytes;
        }
        if let Some(byte) = (0..=255u8).find(|b| !tokens.iter().any(|t| t == &[*b])) {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                message: format!(
                    "has no token for the single byte {byte:#04x}; a World vocabulary covers \
                     every byte"
                ),
            });
        }
        let mut nodes = vec![TrieNode::default()];
        for (id, bytes) in tokens.iter().enumerate().skip(1) {
            let mut node = 0usize;
            for &byte in bytes {
                node = match nodes[node].children.binary_search_by_key(&byte, |c| c.0) {
                    Ok(at) => nodes[node].children[at].1 as usize,
                    Err(at) => {
                        let child = nodes.len();
                        nodes.push(TrieNode::default());
                        nodes[node].children.insert(at, (byte, child as u32));
                        child
                    }
                };
            }
            if !bytes.is_empty() {
                nodes[node].token = Some(id as u32);
            }
        }
        Ok(Self {
            tokens,
            nodes,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ids 0 (end of text) to the largest.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The ids of `text` and each token's byte range in it.
    pub fn encode_with_offsets(&self, text: &str) -> (Vec<u32>, Vec<(usize, usize)>) {
        let bytes = text.as_bytes();
        let (mut ids, mut offsets) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < bytes.len() {
            let (mut node, mut best) = (0usize, None);
            for (at, byte) in bytes[start..].iter().enumerate() {
                match self.nodes[node]
                    .children
                    .binary_search_by_key(byte, |c| c.0)
                {
                    Ok(i) => node = self.nodes[node].children[i].1 as usize,
                    Err(_) => break,
                }
                if let Some(token) = self.nodes[node].token {
                    best = Some((token, start + at + 1));
                }
            }
            // Every single byte is a token (checked at load), so a match always exists.
            let (token, end) = best.expect("the vocabulary covers every byte");
            ids.push(token);
            offsets.push((start, end));
            start = end;
        }
        (ids, offsets)
    }

    /// The text of `ids` (id 0 and unknown ids contribute nothing; bytes that are not valid
    /// UTF-8, such as half a character at the end of a generation, become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter_map(|&id| self.tokens.get(id as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes of token `id`, if it has any.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.tokens
            .get(id as usize)
            .map(Vec::as_slice)
            .filter(|b| !b.is_empty())
    }
}

/// The bytes of a Python `str` (UTF-8) or `bytes` literal as `repr` writes them: `'…'` or `"…"`,
/// `b` prefix for bytes, escapes `\\ \' \" \n \r \t \a \b \f \v \0`, `\xNN`, and in strings
/// `\uNNNN` and `\UNNNNNNNN`.
fn python_literal(repr: &str) -> std::result::Result<Vec<u8>, String> {
    let (is_bytes, quoted) = match repr.strip_prefix('b') {
        Some(rest) => (true, rest),
        None => (false, repr),
    };
    let quote = quoted.chars().next().filter(|q| *q == '\'' || *q == '"');
    let inner = quote
        .and_then(|q| quoted.strip_prefix(q)?.strip_suffix(q))
        .ok_or_else(|| format!("`{repr}` is not a quoted Python literal"))?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    let push_char = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            push_char(&mut out, c);
            continue;
        }
        let escape = chars
            .next()
            .ok_or_else(|| format!("`{repr}` ends in a lone backslash"))?;
        let mut hex = |digits: usize| -> std::result::Result<u32, String> {
            let text: String = chars.by_ref().take(digits).collect();
            if text.len() != digits {
                return Err(format!("`{repr}`: a short \\{escape} escape"));
            }
            u32::from_str_radix(&text, 16).map_err(|_| format!("`{repr}`: bad hex `{text}`"))
        };
        match escape {
            'x' => {
                let value = hex(2)?;
                if is_bytes {
                    out.push(value as u8);
                } else {
                    push_char(&mut out, char::from_u32(value).unwrap_or('\u{fffd}'));
                }
            }
            'u' | 'U' if !is_bytes => {
                let value = hex(if escape == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(value)
                    .ok_or_else(|| format!("`{repr}`: U+{value:X} is not a character"))?;
                push_char(&mut out, c);
            }
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'a' => out.push(0x07),
            'b' => out.push(0x08),
            'f' => out.push(0x0c),
            'v' => out.push(0x0b),
            '0' => out.push(0),
            '\\' | '\'' | '"' => out.push(escape as u8),
            other => return Err(format!("`{repr}`: unsupported escape \\{other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::python_literal;

    #[test]
    fn python_literals_give_their_bytes() {
        assert_eq!(python_literal("'\\x00'").unwrap(), vec![0]);
        assert_eq!(python_literal("b'\\xff'").unwrap(), vec![0xff]);
        // In a str, \xNN is a code point: UTF-8 makes two bytes of it.
        assert_eq!(python_literal("'\\xe9'").unwrap(), "é".as_bytes());
        assert_eq!(python_literal("'\\u2002'").unwrap(), "\u{2002}".as_bytes());
        assert_eq!(python_literal("\"it's\"").unwrap(), b"it's");
        assert_eq!(python_literal("'a\\'b\\\\'").unwrap(), b"a'b\\");
        assert!(python_literal("abc").is_err());
        assert!(python_literal("'\\q'").is_err());
    }
}
