//! Data-parallel scale-out: processes (one per node, torchrun's conventions) that join one
//! group at a master address and sum their gradients every optimizer step.
//!
//! - [`launch`]: who this process is in the world (`--nnodes`, `--node-rank`, `--master-addr`,
//!   `--master-port`, or the recipe's `[distributed]` table) and how long a peer may be silent.
//! - [`rendezvous`]: joining the group: rank 0 listens at the master port, every other rank
//!   connects and shows its identity (version, recipe, base model); rank 0 refuses a group
//!   whose members disagree, naming what differs, then wires the ranks into a ring.
//! - [`ring`]: the group's collectives over that ring: a bandwidth-optimal ring all-reduce
//!   (each rank sends and receives `2 (N-1)/N` of the buffer) and a broadcast from rank 0.
//! - [`wire`]: framed messages on TCP and the errors that name the peer at fault.
//!
//! Why not burn-collective: its 0.21.0 (the newest published) cross-node all-reduce does not
//! return from its second call (its node-sync list is never cleared; measured: two processes on
//! localhost, the second `all_reduce` still waiting after 60 s), an unreachable orchestrator is
//! retried forever, and a lost peer panics a background task instead of returning an error. A
//! training loop needs thousands of all-reduces and an error naming the peer; see the README.
//!
//! Every blocking read and write has the group's timeout, so a dead, stalled or unreachable
//! peer ends every other process with an [`Error::Peer`](crate::Error::Peer) or
//! [`Error::Distributed`](crate::Error::Distributed) instead of a hang.

pub mod launch;
pub mod rendezvous;
pub mod ring;
pub mod wire;

pub use launch::{Launch, Place};
pub use rendezvous::{Identity, join};
pub use ring::{CommStats, ProcessGroup};
