//! Framed messages on TCP (a little-endian `u64` length, then the bytes), with the group's
//! timeout on every read and write, and errors that name the peer at the other end.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Frames larger than this are refused (a corrupt length, or something that is not a peer):
/// 64 GiB, far above any adapter's gradient.
const MAX_FRAME: u64 = 1 << 36;
/// Control messages (a join, the ring's addresses) are small: a stranger on the port cannot make
/// the rendezvous allocate more than this.
const MAX_CONTROL: u64 = 16 << 20;

/// A connection to one peer.
pub struct Link {
    stream: TcpStream,
    /// The peer's rank (`None` while a rendezvous does not know it yet).
    pub rank: Option<usize>,
    /// The peer's address, for errors.
    pub address: String,
    timeout: Duration,
}

impl Link {
    /// Wraps `stream` to the peer `rank` at `address`; every read and write waits at most
    /// `timeout`.
    pub fn new(stream: TcpStream, rank: Option<usize>, timeout: Duration) -> Result<Self> {
        let address = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown address".into());
        let link = Self {
            stream,
            rank,
            address,
            timeout,
        };
        let setup = |r: std::io::Result<()>| r.map_err(|e| link.error(e, "setting up"));
        setup(link.stream.set_nonblocking(false))?;
        setup(link.stream.set_nodelay(true))?;
        setup(link.stream.set_read_timeout(Some(timeout)))?;
        setup(link.stream.set_write_timeout(Some(timeout)))?;
        Ok(link)
    }

    /// Sends one frame.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let length = (bytes.len() as u64).to_le_bytes();
        self.stream
            .write_all(&length)
            .and_then(|()| self.stream.write_all(bytes))
            .map_err(|e| self.error(e, "sending"))
    }

    /// Receives one frame into `buffer` (resized to it).
    pub fn recv_into(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.recv_at_most(buffer, MAX_FRAME)
    }

    fn recv_at_most(&mut self, buffer: &mut Vec<u8>, limit: u64) -> Result<()> {
        let mut length = [0u8; 8];
        self.stream
            .read_exact(&mut length)
            .map_err(|e| self.error(e, "receiving"))?;
        let length = u64::from_le_bytes(length);
        if length > limit {
            return Err(self.protocol(format!(
                "announced a message of {length} bytes: not a burn-peft peer, or a corrupt stream"
            )));
        }
        buffer.resize(length as usize, 0);
        self.stream
            .read_exact(buffer)
            .map_err(|e| self.error(e, "receiving"))
    }

    /// Receives one frame.
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        let mut buffer = Vec::new();
        self.recv_into(&mut buffer)?;
        Ok(buffer)
    }

    /// Sends `value` as JSON.
    pub fn send_json<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).expect("control messages serialise");
        self.send(&bytes)
    }

    /// Receives a JSON control message.
    pub fn recv_json<T: DeserializeOwned>(&mut self) -> Result<T> {
        let mut bytes = Vec::new();
        self.recv_at_most(&mut bytes, MAX_CONTROL)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            self.protocol(format!(
                "sent a message this version cannot read ({e}): is it the same burn-peft?"
            ))
        })
    }

    /// Waits at most `timeout` for each read and write from now on.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.timeout = timeout;
        self.stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| self.stream.set_write_timeout(Some(timeout)))
            .map_err(|e| self.error(e, "setting up"))
    }

    /// An error about this peer.
    pub fn protocol(&self, message: String) -> Error {
        Error::Peer {
            rank: self.rank.unwrap_or(usize::MAX),
            address: self.address.clone(),
            message,
        }
    }

    /// The I/O error `e` met while `doing` something with this peer, explained.
    fn error(&self, e: std::io::Error, doing: &str) -> Error {
        let message = match e.kind() {
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => format!(
                "connection closed while {doing}: the process ended, was killed or failed; its \
                 own output says why"
            ),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
                "nothing for {:.0} s while {doing} (distributed.timeout_s): the process stalled \
                 or its node is unreachable",
                self.timeout.as_secs_f64()
            ),
            _ => format!("{doing} failed: {e}"),
        };
        self.protocol(message)
    }
}

/// Connects to `address` (`host:port`), retrying until `deadline`: the peer may not be
/// listening yet. `what` names it in the error (`the master (distributed.master_addr)`).
pub fn connect_until(address: &str, deadline: Instant, what: &str) -> Result<TcpStream> {
    let resolved: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| Error::Distributed {
            message: format!("cannot resolve {what} `{address}`: {e}"),
        })?
        .collect();
    let mut last = None;
    loop {
        for candidate in &resolved {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = left
                .min(Duration::from_secs(2))
                .max(Duration::from_millis(50));
            match TcpStream::connect_timeout(candidate, attempt) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        if Instant::now() >= deadline {
            let why = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
            return Err(Error::Distributed {
                message: format!(
                    "cannot reach {what} at {address} ({why}); gave up after the timeout (distributed.timeout_s): is it started, and are the address and port right?"
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Accepts one connection on `listener` before `deadline` (`None`: the deadline passed).
pub fn accept_until(listener: &TcpListener, deadline: Instant) -> Result<Option<TcpStream>> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Distributed {
            message: format!("cannot poll the listening socket: {e}"),
        })?;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(Some(stream)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Distributed {
                    message: format!("accepting a peer failed: {e}"),
                });
            }
        }
    }
}
