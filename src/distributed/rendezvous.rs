//! Forming the group. Rank 0 listens at the master port; every other rank connects (retrying
//! until the timeout: nodes start in any order) and sends its [`Identity`]. Once all `nnodes`
//! have joined, rank 0 compares them and either refuses the group, naming what differs, or
//! sends everyone the ring's addresses; each rank then connects to the next rank and accepts
//! the previous one.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::launch::{Launch, Place};
use super::ring::ProcessGroup;
use super::wire::{Link, accept_until, connect_until};
use crate::{Error, Result};

/// How long rank 0 waits for a new connection's join message.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What every member of a group must agree on: the program's version, and named values (the
/// recipe's keys, the base model's fingerprint) compared key by key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub version: String,
    pub values: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Control {
    /// A rank joining: who it is and where its ring listener is.
    Hello {
        rank: usize,
        world: usize,
        identity: Identity,
        ring_port: u16,
    },
    /// The group is formed: the ring address of every rank.
    Welcome { ring: Vec<String> },
    /// The group is refused, and why.
    Refused { message: String },
}

/// Joins the group `launch` describes at `place`, showing `identity`; returns the group wired
/// into a ring. A world of one returns a group of one at once.
pub fn join(launch: &Launch, place: Place, identity: &Identity) -> Result<ProcessGroup> {
    launch.validate()?;
    if place.world == 1 {
        return Ok(ProcessGroup::single());
    }
    let deadline = Instant::now() + launch.timeout();
    let ring_listener = bind(0, "the ring listener")?;
    let ring = if place.rank == 0 {
        host(launch, place, identity, &ring_listener, deadline)?
    } else {
        attend(launch, place, identity, &ring_listener, deadline)?
    };
    connect_ring(launch, place, &ring, &ring_listener, deadline)
}

fn bind(port: u16, what: &str) -> Result<TcpListener> {
    TcpListener::bind(("0.0.0.0", port)).map_err(|e| Error::Distributed {
        message: if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "port {port} on this machine is in use (distributed.master_port / --master-port): \
                 another run or program holds it; choose another port"
            )
        } else {
            format!("cannot listen for {what} on port {port}: {e}")
        },
    })
}

fn local_port(listener: &TcpListener) -> Result<u16> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Distributed {
            message: format!("cannot read the ring listener's port: {e}"),
        })
}

/// Rank 0: waits for every other rank, checks them, answers all.
fn host(
    launch: &Launch,
    place: Place,
    identity: &Identity,
    ring_listener: &TcpListener,
    deadline: Instant,
) -> Result<Vec<String>> {
    let listener = bind(launch.master_port, "the rendezvous")?;
    let mut joined: Vec<Option<(Link, u16)>> = (0..place.world).map(|_| None).collect();
    let mut problem = None;
    while problem.is_none() && joined.iter().skip(1).any(Option::is_none) {
        let Some(stream) = accept_until(&listener, deadline)? else {
            let missing: Vec<String> = (1..place.world)
                .filter(|r| joined[*r].is_none())
                .map(|r| r.to_string())
                .collect();
            problem = Some(format!(
                "rank {} did not join {} within the timeout (distributed.timeout_s = {} s): are \
                 they started with --nnodes {} and this --master-addr/--master-port?",
                missing.join(", "),
                launch.master(),
                launch.timeout_s,
                launch.nnodes
            ));
            break;
        };
        // A peer sends its join at once: something that does not (a port scan, a health
        // check) is dropped after a few seconds, not waited for, and is not fatal.
        let mut link = Link::new(stream, None, HELLO_TIMEOUT.min(launch.timeout()))?;
        let Ok(Control::Hello {
            rank,
            world,
            identity: theirs,
            ring_port,
        }) = link.recv_json::<Control>()
        else {
            continue;
        };
        link.rank = Some(rank);
        link.set_timeout(launch.timeout())?;
        problem = check_member(place, identity, &joined, &link, rank, world, &theirs);
        if problem.is_none() {
            joined[rank] = Some((link, ring_port));
        } else {
            let _ = link.send_json(&Control::Refused {
                message: problem.clone().unwrap_or_default(),
            });
        }
    }
    if let Some(message) = problem {
        for (link, _) in joined.iter_mut().flatten() {
            let _ = link.send_json(&Control::Refused {
                message: message.clone(),
            });
        }
        return Err(Error::Distributed { message });
    }
    let mut ring = vec![format!(
        "{}:{}",
        launch.master_addr,
        local_port(ring_listener)?
    )];
    for (link, port) in joined.iter().skip(1).flatten() {
        let ip = link
            .address
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip())
            .ok();
        // A rank on rank 0's own machine connected over loopback: the others reach it at the
        // master's address.
        let host = match ip {
            Some(ip) if !ip.is_loopback() => host_text(ip),
            _ => launch.master_addr.clone(),
        };
        ring.push(format!("{host}:{port}"));
    }
    for (link, _) in joined.iter_mut().flatten() {
        link.send_json(&Control::Welcome { ring: ring.clone() })?;
    }
    Ok(ring)
}

fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// What is wrong with rank `rank` joining (`None`: nothing).
fn check_member(
    place: Place,
    ours: &Identity,
    joined: &[Option<(Link, u16)>],
    link: &Link,
    rank: usize,
    world: usize,
    theirs: &Identity,
) -> Option<String> {
    let who = format!("rank {rank} ({})", link.address);
    if world != place.world {
        return Some(format!(
            "{who} counts a world of {world} ranks (--nnodes × devices per node), rank 0 counts {}",
            place.world
        ));
    }
    if rank == 0 || rank >= place.world {
        return Some(format!("{who} claims a rank outside 1..{}", place.world));
    }
    if let Some((first, _)) = &joined[rank] {
        return Some(format!(
            "two processes claim rank {rank} ({} and {}): give each node its own --node-rank",
            first.address, link.address
        ));
    }
    if theirs.version != ours.version {
        return Some(format!(
            "{who} runs burn-peft {}, rank 0 runs {}: every node needs the same build",
            theirs.version, ours.version
        ));
    }
    let keys: std::collections::BTreeSet<&String> =
        ours.values.keys().chain(theirs.values.keys()).collect();
    let unset = String::from("unset");
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|k| ours.values.get(*k) != theirs.values.get(*k))
        .map(|k| {
            format!(
                "`{k}` (rank 0: {}, rank {rank}: {})",
                ours.values.get(k).unwrap_or(&unset),
                theirs.values.get(k).unwrap_or(&unset)
            )
        })
        .collect();
    (!differences.is_empty()).then(|| {
        format!(
            "{who} and rank 0 disagree on {}: every node must run the same recipe on the same \
             base model",
            differences.join(", ")
        )
    })
}

/// A rank other than 0: joins the master, waits for the ring or the refusal.
fn attend(
    launch: &Launch,
    place: Place,
    identity: &Identity,
    ring_listener: &TcpListener,
    deadline: Instant,
) -> Result<Vec<String>> {
    let stream = connect_until(&launch.master(), deadline, "the master (rank 0)")?;
    let mut link = Link::new(stream, Some(0), launch.timeout())?;
    link.send_json(&Control::Hello {
        rank: place.rank,
        world: place.world,
        identity: identity.clone(),
        ring_port: local_port(ring_listener)?,
    })?;
    match link.recv_json::<Control>()? {
        Control::Welcome { ring } if ring.len() == place.world => Ok(ring),
        Control::Refused { message } => Err(Error::Distributed { message }),
        other => Err(link.protocol(format!("answered the join with {other:?}"))),
    }
}

/// Connects to the next rank's ring listener and accepts the previous rank on ours.
fn connect_ring(
    launch: &Launch,
    place: Place,
    ring: &[String],
    listener: &TcpListener,
    deadline: Instant,
) -> Result<ProcessGroup> {
    let Place { rank, world } = place;
    let (next_rank, prev_rank) = ((rank + 1) % world, (rank + world - 1) % world);
    let stream = connect_until(&ring[next_rank], deadline, &format!("rank {next_rank}"))?;
    let mut next = Link::new(stream, Some(next_rank), launch.timeout())?;
    next.send_json(&rank)?;
    let prev = loop {
        let Some(stream) = accept_until(listener, deadline)? else {
            return Err(Error::Peer {
                rank: prev_rank,
                address: ring[prev_rank].clone(),
                message: "did not connect to this rank's ring within the timeout".into(),
            });
        };
        // The previous rank names itself at once; anything else is dropped.
        let mut link = Link::new(stream, None, HELLO_TIMEOUT.min(launch.timeout()))?;
        if link.recv_json::<usize>().ok() == Some(prev_rank) {
            link.rank = Some(prev_rank);
            link.set_timeout(launch.timeout())?;
            break link;
        }
    };
    Ok(ProcessGroup::ring(rank, world, next, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(rank: usize, port: u16) -> Launch {
        Launch {
            nnodes: 3,
            node_rank: rank,
            master_addr: "127.0.0.1".into(),
            master_port: port,
            timeout_s: 20.0,
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn identity(lr: &str) -> Identity {
        Identity {
            version: "1".into(),
            values: [("optim.lr".to_string(), lr.to_string())].into(),
        }
    }

    #[test]
    fn three_ranks_form_a_ring_and_reduce() {
        let port = free_port();
        let sums: Vec<f32> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|r| {
                    s.spawn(move || {
                        let l = launch(r, port);
                        let mut group = join(&l, l.place(0, 1), &identity("1e-3")).unwrap();
                        assert_eq!((group.rank(), group.world()), (r, 3));
                        let mut data = vec![r as f32 + 1.0; 5];
                        group.all_reduce_sum(&mut data).unwrap();
                        data[4]
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(sums, vec![6.0; 3]);
    }

    #[test]
    fn a_differing_key_is_refused_on_both_sides() {
        let port = free_port();
        let errors: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = [(0, "1e-3"), (1, "2e-3")]
                .into_iter()
                .map(|(r, lr)| {
                    s.spawn(move || {
                        let mut l = launch(r, port);
                        l.nnodes = 2;
                        join(&l, l.place(0, 1), &identity(lr))
                            .err()
                            .unwrap()
                            .to_string()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for e in errors {
            assert!(e.contains("`optim.lr` (rank 0: 1e-3, rank 1: 2e-3)"), "{e}");
        }
    }
}
