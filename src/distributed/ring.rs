//! The group's collectives over a ring of TCP links: each rank sends to the next rank and
//! receives from the previous one.
//!
//! The all-reduce is the bandwidth-optimal ring (Patarasuk & Yuan; NCCL's and Horovod's): the
//! buffer is cut into one chunk per rank, `N-1` reduce-scatter steps leave each rank with one
//! chunk summed over all ranks, `N-1` all-gather steps hand every summed chunk round. Each rank
//! sends and receives `2 (N-1)/N` of the buffer whatever `N` is. Every chunk is summed once, in
//! one order, and then copied, so all ranks end with bit-identical values: replicas that apply
//! the same update stay identical.

use std::time::Instant;

use super::wire::Link;
use crate::{Error, Result};

/// What a group has communicated so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommStats {
    /// Collective calls made.
    pub calls: u64,
    /// Bytes this rank sent.
    pub bytes_sent: u64,
    /// Seconds spent inside collectives (waiting for slower peers included).
    pub seconds: f64,
}

/// This process's place in a group and its links to its ring neighbours.
pub struct ProcessGroup {
    rank: usize,
    world: usize,
    /// To rank `rank + 1` (sent on) and from rank `rank - 1` (received from); `None` alone.
    links: Option<(Link, Link)>,
    stats: CommStats,
}

impl ProcessGroup {
    /// A group of one: every collective returns its input.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world: 1,
            links: None,
            stats: CommStats::default(),
        }
    }

    /// Rank `rank` of `world`, sending on `next` and receiving on `prev`.
    pub(crate) fn ring(rank: usize, world: usize, next: Link, prev: Link) -> Self {
        Self {
            rank,
            world,
            links: Some((next, prev)),
            stats: CommStats::default(),
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// Rank 0: the one that writes the run folder.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    pub fn stats(&self) -> CommStats {
        self.stats
    }

    /// Sums `data` over all ranks, in place; every rank must call it with the same length.
    pub fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        let (rank, world) = (self.rank, self.world);
        let Some((next, prev)) = self.links.as_mut() else {
            return Ok(());
        };
        let started = Instant::now();
        let (base, extra) = (data.len() / world, data.len() % world);
        let bounds = |chunk: usize| {
            let start = chunk * base + chunk.min(extra);
            start..start + base + usize::from(chunk < extra)
        };
        let mut sent = 0u64;
        let mut incoming = Vec::new();
        let mut outgoing = Vec::new();
        // Reduce-scatter (received chunks added: after step s, chunk rank - s - 1 holds s + 2
        // ranks' sum), then all-gather (received chunks kept: rank r starts with the complete
        // chunk r + 1). In both, step s sends chunk rank + shift - s and receives the one before.
        let reduce_scatter: (usize, fn(&mut f32, f32)) = (0, |value, x| *value += x);
        let all_gather: (usize, fn(&mut f32, f32)) = (1, |value, x| *value = x);
        for (shift, combine) in [reduce_scatter, all_gather] {
            for step in 0..world - 1 {
                let send = bounds((rank + shift + world - step) % world);
                let recv = bounds((rank + shift + 2 * world - step - 1) % world);
                encode(&data[send], &mut outgoing);
                exchange(next, prev, &outgoing, &mut incoming)?;
                sent += outgoing.len() as u64;
                let target = &mut data[recv];
                check_length(prev, &incoming, target.len())?;
                for (value, bytes) in target.iter_mut().zip(incoming.chunks_exact(4)) {
                    combine(
                        value,
                        f32::from_le_bytes(bytes.try_into().expect("4 bytes")),
                    );
                }
            }
        }
        self.stats.calls += 1;
        self.stats.bytes_sent += sent;
        self.stats.seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Rank 0's `bytes` on every rank (the others' argument is ignored), passed along the ring.
    pub fn broadcast(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        let (rank, world) = (self.rank, self.world);
        let Some((next, prev)) = self.links.as_mut() else {
            return Ok(bytes);
        };
        let started = Instant::now();
        let value = if rank == 0 { bytes } else { prev.recv()? };
        if rank + 1 < world {
            next.send(&value)?;
            self.stats.bytes_sent += value.len() as u64;
        }
        self.stats.calls += 1;
        self.stats.seconds += started.elapsed().as_secs_f64();
        Ok(value)
    }
}

fn encode(values: &[f32], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Sends `outgoing` to `next` while receiving a frame from `prev` (both at once: a ring where
/// every rank sent first would deadlock once a chunk outgrows the socket buffers).
fn exchange(
    next: &mut Link,
    prev: &mut Link,
    outgoing: &[u8],
    incoming: &mut Vec<u8>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| next.send(outgoing));
        let received = prev.recv_into(incoming);
        let sent = sender.join().unwrap_or_else(|_| {
            Err(Error::Distributed {
                message: "the sending thread panicked".into(),
            })
        });
        // The receive's error first: when a neighbour dies, it is the one that names it.
        received.and(sent)
    })
}

fn check_length(prev: &Link, incoming: &[u8], values: usize) -> Result<()> {
    if incoming.len() == values * 4 {
        return Ok(());
    }
    Err(prev.protocol(format!(
        "sent {} bytes where {} were expected: do all ranks train the same model and adapter?",
        incoming.len(),
        values * 4
    )))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;

    /// `world` groups in one process, wired into a ring over loopback.
    fn ring(world: usize) -> Vec<ProcessGroup> {
        let timeout = Duration::from_secs(10);
        let listeners: Vec<TcpListener> = (0..world)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let nexts: Vec<TcpStream> = (0..world)
            .map(|r| TcpStream::connect(listeners[(r + 1) % world].local_addr().unwrap()).unwrap())
            .collect();
        let prevs: Vec<TcpStream> = listeners.iter().map(|l| l.accept().unwrap().0).collect();
        nexts
            .into_iter()
            .zip(prevs)
            .enumerate()
            .map(|(r, (next, prev))| {
                ProcessGroup::ring(
                    r,
                    world,
                    Link::new(next, Some((r + 1) % world), timeout).unwrap(),
                    Link::new(prev, Some((r + world - 1) % world), timeout).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn all_reduce_sums_identically_on_every_rank() {
        for (world, len) in [(2, 7), (3, 10), (4, 3), (3, 1000)] {
            let groups = ring(world);
            let results: Vec<(Vec<f32>, CommStats)> = std::thread::scope(|s| {
                let handles: Vec<_> = groups
                    .into_iter()
                    .map(|mut g| {
                        s.spawn(move || {
                            let r = g.rank();
                            let mut data: Vec<f32> =
                                (0..len).map(|i| (i * world + r) as f32 * 0.1).collect();
                            g.all_reduce_sum(&mut data).unwrap();
                            g.all_reduce_sum(&mut data).unwrap();
                            (data, g.stats())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for i in 0..len {
                let once: f32 = (0..world).map(|r| (i * world + r) as f32 * 0.1).sum();
                let expected = once * world as f32;
                let first = results[0].0[i];
                assert!(
                    (first - expected).abs() <= 1e-3 * expected.abs().max(1.0),
                    "{world} {i}"
                );
                for (data, _) in &results {
                    assert_eq!(data[i].to_bits(), first.to_bits(), "ranks differ");
                }
            }
            // Each call sends 2 (N-1)/N of the buffer (chunks of unequal size round it).
            let per_call = 2 * (world - 1) * 4 * len / world;
            let sent = results[0].1.bytes_sent as usize;
            assert!(
                sent.abs_diff(2 * per_call) <= 2 * 2 * (world - 1) * 4,
                "{sent} vs {per_call}"
            );
        }
    }

    #[test]
    fn broadcast_hands_rank_zeros_bytes_round() {
        let groups = ring(3);
        let results: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|mut g| s.spawn(move || g.broadcast(vec![g.rank() as u8; 5]).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(|r| r == &vec![0u8; 5]));
    }

    #[test]
    fn a_lost_peer_is_named() {
        let mut groups = ring(2);
        let dead = groups.pop().unwrap();
        drop(dead);
        let mut data = vec![1.0f32; 16];
        let err = groups[0].all_reduce_sum(&mut data).unwrap_err().to_string();
        assert!(err.contains("peer rank 1"), "{err}");
    }
}
