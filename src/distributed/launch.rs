//! Where this process stands in a data-parallel world, as torchrun names it: `nnodes` processes
//! (one per node), this one `node_rank`, all meeting rank 0 at `master_addr:master_port`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// torchrun's default rendezvous port.
pub const DEFAULT_MASTER_PORT: u16 = 29500;
/// How long a peer may be silent (or the master unreachable) before the run stops: long enough
/// for rank 0 to write a checkpoint or evaluate while the others wait, as torch's default
/// collective timeout (10 minutes).
pub const DEFAULT_TIMEOUT_S: f64 = 600.0;

/// The `[distributed]` table of a recipe, and the `train` flags that override it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    /// Processes in the world (one per node). 1: no distribution.
    #[serde(default = "default_nnodes")]
    pub nnodes: usize,
    /// This process's rank, `0..nnodes`; rank 0 hosts the rendezvous and writes the run folder.
    #[serde(default)]
    pub node_rank: usize,
    /// Host name or address of rank 0, as every node can reach it.
    #[serde(default = "default_master_addr")]
    pub master_addr: String,
    /// Port rank 0 listens on for the rendezvous.
    #[serde(default = "default_master_port")]
    pub master_port: u16,
    /// Seconds a peer may be silent, or the master unreachable, before every process stops with
    /// an error naming it.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
}

fn default_nnodes() -> usize {
    1
}
fn default_master_addr() -> String {
    "127.0.0.1".into()
}
fn default_master_port() -> u16 {
    DEFAULT_MASTER_PORT
}
fn default_timeout_s() -> f64 {
    DEFAULT_TIMEOUT_S
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            nnodes: default_nnodes(),
            node_rank: 0,
            master_addr: default_master_addr(),
            master_port: default_master_port(),
            timeout_s: default_timeout_s(),
        }
    }
}

/// One rank's place in the world: the nodes' devices counted node by node (rank
/// `node_rank × devices + device`), as torchrun counts `--nnodes × --nproc-per-node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub rank: usize,
    pub world: usize,
}

impl Launch {
    /// Whether there is more than one node.
    pub fn is_distributed(&self) -> bool {
        self.nnodes > 1
    }

    /// The place of this node's `device`-th of `devices` devices.
    pub fn place(&self, device: usize, devices: usize) -> Place {
        Place {
            rank: self.node_rank * devices + device,
            world: self.nnodes * devices,
        }
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }

    /// `master_addr:master_port`.
    pub fn master(&self) -> String {
        format!("{}:{}", self.master_addr, self.master_port)
    }

    /// Checks the values on their own (a rank outside the world, a zero port or timeout).
    pub fn validate(&self) -> Result<()> {
        if self.nnodes == 0 {
            return Err(Error::invalid(
                "distributed.nnodes",
                self.nnodes,
                "must be at least 1",
            ));
        }
        if self.node_rank >= self.nnodes {
            return Err(Error::invalid(
                "distributed.node_rank",
                self.node_rank,
                format!(
                    "must be below nnodes = {} (ranks are 0..{})",
                    self.nnodes,
                    self.nnodes - 1
                ),
            ));
        }
        if self.is_distributed() && self.master_port == 0 {
            return Err(Error::invalid(
                "distributed.master_port",
                0,
                "must be a fixed port every node knows",
            ));
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Err(Error::invalid(
                "distributed.timeout_s",
                self.timeout_s,
                "must be a positive number of seconds",
            ));
        }
        if self.master_addr.trim().is_empty() {
            return Err(Error::invalid(
                "distributed.master_addr",
                "\"\"",
                "must name rank 0's host",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_outside_the_world_is_named() {
        let launch = Launch {
            nnodes: 2,
            node_rank: 2,
            ..Launch::default()
        };
        let err = launch.validate().unwrap_err().to_string();
        assert!(
            err.contains("distributed.node_rank") && err.contains("nnodes = 2"),
            "{err}"
        );
        Launch::default().validate().unwrap();
    }
}
