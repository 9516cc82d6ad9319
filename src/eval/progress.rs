//! A progress line on stderr for long evaluations: items done, throughput and ETA, printed at
//! most every few seconds (and at the end) so that logs stay short.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shared between worker threads (HumanEval runs programs in parallel).
pub struct Progress {
    label: String,
    total: usize,
    started: Instant,
    every: Duration,
    state: Mutex<State>,
}

struct State {
    done: usize,
    tokens: usize,
    last_print: Option<Instant>,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        Self {
            label: label.into(),
            total,
            started: Instant::now(),
            every: Duration::from_secs(5),
            state: Mutex::new(State {
                done: 0,
                tokens: 0,
                last_print: None,
            }),
        }
    }

    /// Records `items` more done and `tokens` more generated; prints when due.
    pub fn advance(&self, items: usize, tokens: usize) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.done += items;
        state.tokens += tokens;
        let now = Instant::now();
        let due = state
            .last_print
            .is_none_or(|last| now.duration_since(last) >= self.every);
        if due || state.done >= self.total {
            state.last_print = Some(now);
            eprintln!("{}", self.line(state.done, state.tokens, now));
        }
    }

    fn line(&self, done: usize, tokens: usize, now: Instant) -> String {
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let percent = 100.0 * done as f64 / self.total.max(1) as f64;
        let mut line = format!(
            "{}: {done}/{} ({percent:.1}%), elapsed {}",
            self.label,
            self.total,
            clock(elapsed)
        );
        if tokens > 0 && elapsed > 0.0 {
            line.push_str(&format!(", {:.1} tokens/s", tokens as f64 / elapsed));
        }
        if done > 0 && done < self.total {
            let remaining = elapsed / done as f64 * (self.total - done) as f64;
            line.push_str(&format!(", ETA {}", clock(remaining)));
        }
        line
    }
}

/// `h:mm:ss`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
