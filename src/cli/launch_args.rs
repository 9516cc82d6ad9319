//! torchrun's launch flags, shared by `train` and `bench train`.

use burn_peft::distributed::Launch;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct LaunchArgs {
    /// Data-parallel: processes in the run, one per node (torchrun's --nnodes; the recipe's
    /// distributed.nnodes). Every node runs the same command but for --node-rank.
    #[arg(long, help_heading = "Data-parallel (torchrun's flags)")]
    pub nnodes: Option<usize>,
    /// This process's rank, 0..nnodes: rank 0 hosts the rendezvous and alone writes the run
    /// folder and shows progress.
    #[arg(long, help_heading = "Data-parallel (torchrun's flags)")]
    pub node_rank: Option<usize>,
    /// Rank 0's host name or address, as every node reaches it (default 127.0.0.1).
    #[arg(long, help_heading = "Data-parallel (torchrun's flags)")]
    pub master_addr: Option<String>,
    /// The port rank 0 listens on (default 29500).
    #[arg(long, help_heading = "Data-parallel (torchrun's flags)")]
    pub master_port: Option<u16>,
}

impl LaunchArgs {
    /// The flags as recipe overrides (`distributed.nnodes=2`, …), for after any `--set`.
    pub fn overrides(&self) -> Vec<String> {
        let values = [
            ("nnodes", self.nnodes.map(|n| n.to_string())),
            ("node_rank", self.node_rank.map(|n| n.to_string())),
            (
                "master_addr",
                self.master_addr
                    .clone()
                    .map(|a| toml::Value::String(a).to_string()),
            ),
            ("master_port", self.master_port.map(|p| p.to_string())),
        ];
        values
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| format!("distributed.{key}={v}")))
            .collect()
    }

    /// The launch the flags describe (defaults for those not given), checked.
    pub fn launch(&self) -> burn_peft::Result<Launch> {
        let defaults = Launch::default();
        let launch = Launch {
            nnodes: self.nnodes.unwrap_or(defaults.nnodes),
            node_rank: self.node_rank.unwrap_or(defaults.node_rank),
            master_addr: self.master_addr.clone().unwrap_or(defaults.master_addr),
            master_port: self.master_port.unwrap_or(defaults.master_port),
            timeout_s: defaults.timeout_s,
        };
        launch.validate()?;
        Ok(launch)
    }
}
