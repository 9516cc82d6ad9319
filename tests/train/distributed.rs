//! Data-parallel training across processes on this machine (`--nnodes 2`, localhost): the same
//! math as one process, a lost or stalled peer ending the run with an error that names it (and
//! `--resume` on both continuing exactly), and bad launches refused at once. The processes are
//! the real CLI; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use burn_peft::train::metrics::MetricsLog;
use burn_peft::train::recipe::Recipe;
use burn_peft::train::{TrainOptions, train, train_on_devices};

use crate::common::*;

/// A port nothing listens on (the OS's pick, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One rank of `recipe` (written next to its output folder) as `burn-peft train`, its stderr to
/// a file.
struct Rank {
    child: Child,
    log: PathBuf,
}

fn start_rank(recipe: &Recipe, rank: usize, nnodes: usize, port: u16, extra: &[&str]) -> Rank {
    let out = &recipe.run.output_dir;
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let config = out.with_extension(format!("rank{rank}.toml"));
    std::fs::write(&config, recipe.to_toml()).unwrap();
    let log = out.with_extension(format!("rank{rank}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(["train", "--config"])
        .arg(&config)
        .args(["--nnodes", &nnodes.to_string()])
        .args(["--node-rank", &rank.to_string()])
        .args([
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            &port.to_string(),
        ])
        .args(extra)
        .env("BURN_PEFT_NO_TUI", "1")
        .stdout(Stdio::null())
        // To a file, not a pipe: an unread pipe could fill and stall the run.
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Rank { child, log }
}

impl Rank {
    /// Waits at most `limit` for the process to end (killing it and failing past that).
    fn wait(&mut self, limit: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running after {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Both ranks of a run on `recipe`, which must succeed within 300 s.
fn train_two_processes(recipe: &Recipe, extra: &[&str]) {
    let port = free_port();
    let mut ranks: Vec<Rank> = (0..2)
        .map(|r| start_rank(recipe, r, 2, port, extra))
        .collect();
    for (r, rank) in ranks.iter_mut().enumerate() {
        let (status, stderr) = rank.wait(Duration::from_secs(300));
        assert!(status.success(), "rank {r} failed ({status}): {stderr}");
    }
}

fn single_process(recipe: &Recipe) {
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    train::<Train>(recipe, &device(), &quiet).unwrap();
}

fn losses(dir: &Path) -> Vec<f64> {
    MetricsLog::read(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| m.loss)
        .collect()
}

fn assert_same_losses(one: &Path, two: &Path) {
    let (a, b) = (losses(one), losses(two));
    assert_eq!(a.len(), b.len(), "steps logged");
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        let relative = (x - y).abs() / x.abs();
        assert!(relative <= 1e-4, "step {}: loss {x} vs {y}", step + 1);
    }
}

/// The runs of `one` and `two` logged the same losses (1e-4 relative) and saved the same
/// adapter (1e-5); their folders are removed.
fn assert_same_runs(one: &Recipe, two: &Recipe) {
    let (a, b) = (&one.run.output_dir, &two.run.output_dir);
    assert_same_losses(a, b);
    assert_same_adapters(a, b, 1e-5);
    std::fs::remove_dir_all(a).unwrap();
    std::fs::remove_dir_all(b).unwrap();
}

/// The quick recipe with `extra`, trained by one process and by two (`--nnodes 2`), gives the
/// same run.
fn two_processes_train_as_one(tag: &str, extra: &[&str]) {
    let one = quick_recipe(&format!("{tag}-one"), extra);
    let two = quick_recipe(&format!("{tag}-two"), extra);
    single_process(&one);
    train_two_processes(&two, &[]);
    assert_same_runs(&one, &two);
}

/// The default recipe (stories260K, SORSA r16 on all linears, batch 8, γ = 4e-4), shortened:
/// two processes of four examples each against one process of eight.
#[test]
fn two_processes_train_the_default_recipe_as_one_does() {
    let recipe = |tag: &str| {
        let out = format!("run.output_dir=\"{}\"", temp(tag).display());
        let model = format!(
            "model.path=\"{}\"",
            root().join("models/stories260K/hf").display()
        );
        let data = format!(
            "data.train=\"{}\"",
            root().join("datasets/gsm8k/train.jsonl").display()
        );
        let sets = [out, model, data, "optim.max_steps=10".into()];
        Recipe::load(None, &sets).unwrap()
    };
    let (one, two) = (recipe("dp-default-one"), recipe("dp-default-two"));
    single_process(&one);
    train_two_processes(&two, &[]);
    // Rank 0 alone wrote the run folder, and says how large its world was.
    let summary = two.run.output_dir.join("summary.json");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
    assert_eq!(summary["distributed"]["world_size"], 2);
    assert!(
        summary["distributed"]["all_reduced_bytes_per_step"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_same_runs(&one, &two);
}

/// Uneven shards (5 examples over 2 ranks, so 3 and 2 with different target counts) and 3
/// accumulated micro-batches (which 2 ranks do not divide, so each is split): the loss is still
/// weighted by the targets of the whole micro-batch.
#[test]
fn uneven_shards_and_accumulation_keep_the_single_process_math() {
    two_processes_train_as_one(
        "dp-uneven",
        &[
            "optim.batch_size=5",
            "optim.grad_accumulation=3",
            "optim.max_steps=4",
        ],
    );
}

/// 4 accumulated micro-batches on 2 ranks: each rank trains 2 of them whole.
#[test]
fn accumulated_micro_batches_are_dealt_whole_to_the_ranks() {
    two_processes_train_as_one(
        "dp-dealt",
        &["optim.grad_accumulation=4", "optim.max_steps=3"],
    );
}

/// `run.devices = ["cpu", "cpu"]`: two replicas in threads of one process (this machine has
/// one device, which both share; on a GPU node they are `cuda:0`, `cuda:1`) train as one
/// replica does.
#[test]
fn two_replicas_in_one_process_train_as_one_does() {
    let port = format!("distributed.master_port={}", free_port());
    let extra = ["optim.batch_size=5", "optim.max_steps=4", port.as_str()];
    let (one, two) = (
        quick_recipe("dp-devices-one", &extra),
        quick_recipe("dp-devices-two", &extra),
    );
    single_process(&one);
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    let summary = train_on_devices::<Train>(&two, &[device(), device()], &quiet).unwrap();
    assert_eq!(summary.distributed.map(|d| d.world_size), Some(2));
    assert_same_runs(&one, &two);
}

/// `kill -9` of rank 1 mid-run: rank 0 stops within 60 s naming rank 1, its last checkpoint
/// stays valid, and `--resume` on both ends with the uninterrupted run's adapter.
#[test]
fn a_killed_peer_stops_the_run_and_both_resume_to_the_uninterrupted_adapter() {
    let long = [
        "optim.max_steps=30",
        "run.checkpoint_every=2",
        "data.limit=64",
    ];
    let (full, killed) = (
        quick_recipe("dp-kill-full", &long),
        quick_recipe("dp-kill-killed", &long),
    );
    single_process(&full);

    let port = free_port();
    let mut rank0 = start_rank(&killed, 0, 2, port, &[]);
    let mut rank1 = start_rank(&killed, 1, 2, port, &[]);
    let first = killed
        .run
        .output_dir
        .join("checkpoints/step-000002/state.json");
    let started = Instant::now();
    while !first.is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(120)
                && rank0.child.try_wait().unwrap().is_none(),
            "rank 0 ended or took 120 s before its first checkpoint: {}",
            rank0.stderr()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    rank1.child.kill().unwrap(); // SIGKILL
    let _ = rank1.child.wait();
    let killed_at = Instant::now();
    let (status, stderr) = rank0.wait(Duration::from_secs(60));
    assert!(
        !status.success(),
        "rank 0 went on without its peer: {stderr}"
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(60),
        "{:?}",
        killed_at.elapsed()
    );
    let error = stderr.lines().last().unwrap_or_default();
    assert!(
        error.contains("lost peer rank 1 (127.0.0.1"),
        "the error names the lost peer: {stderr}"
    );
    assert!(!killed.run.output_dir.join("adapter").exists());

    train_two_processes(&killed, &["--resume"]);
    assert_same_adapters(&full.run.output_dir, &killed.run.output_dir, 1e-5);
    assert_each_step_logged_once(&killed.run.output_dir, 30);
    std::fs::remove_dir_all(&full.run.output_dir).unwrap();
    std::fs::remove_dir_all(&killed.run.output_dir).unwrap();
}

/// A checkpoint of a run on one process resumes on two with the same global batch, ending
/// with the adapter of the run that never stopped.
#[test]
fn a_checkpoint_resumes_in_another_world_size() {
    let (full, split) = (
        quick_recipe("dp-world-full", &[]),
        quick_recipe("dp-world-split", &[]),
    );
    single_process(&full);
    let stop_early = TrainOptions {
        quiet: true,
        stop_after: Some(4),
        ..Default::default()
    };
    let stopped = train::<Train>(&split, &device(), &stop_early).unwrap();
    assert_eq!(stopped.steps, 4);
    train_two_processes(&split, &["--resume"]);
    assert_same_adapters(&full.run.output_dir, &split.run.output_dir, 1e-5);
    assert_each_step_logged_once(&split.run.output_dir, full.optim.max_steps);
    std::fs::remove_dir_all(&full.run.output_dir).unwrap();
    std::fs::remove_dir_all(&split.run.output_dir).unwrap();
}

/// A peer that stops answering (SIGSTOP) ends the run after `distributed.timeout_s`, naming it.
#[test]
fn a_stalled_peer_stops_the_run_after_the_timeout() {
    let recipe = quick_recipe(
        "dp-stall",
        &[
            "optim.max_steps=200",
            "data.limit=64",
            // Long enough for a loaded CI machine to start both ranks, short for the test.
            "distributed.timeout_s=15",
        ],
    );
    let port = free_port();
    let mut rank0 = start_rank(&recipe, 0, 2, port, &[]);
    let mut rank1 = start_rank(&recipe, 1, 2, port, &[]);
    let metrics = recipe.run.output_dir.join("metrics.jsonl");
    let started = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |m| m.lines().count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120)
                && rank0.child.try_wait().unwrap().is_none(),
            "rank 0 ended or took 120 s before its second step: {}",
            rank0.stderr()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = rank1.child.id() as i32;
    // SAFETY: signalling a child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let (status, stderr) = rank0.wait(Duration::from_secs(60));
    let _ = rank1.child.kill();
    let _ = rank1.child.wait();
    assert!(!status.success());
    assert!(
        stderr.contains("lost peer rank 1") && stderr.contains("distributed.timeout_s"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&recipe.run.output_dir).unwrap();
}

/// Ranks whose recipes differ are refused at startup, on both sides, naming the key.
#[test]
fn a_recipe_mismatch_is_refused_naming_the_key() {
    let a = quick_recipe("dp-mismatch", &[]);
    let mut b = a.clone();
    b.optim.lr = 1e-3;
    let port = free_port();
    let mut rank0 = start_rank(&a, 0, 2, port, &[]);
    let mut rank1 = start_rank(&b, 1, 2, port, &[]);
    for rank in [&mut rank0, &mut rank1] {
        let (status, stderr) = rank.wait(Duration::from_secs(60));
        assert!(!status.success());
        assert!(
            stderr.contains("disagree on `optim.lr` (rank 0: 0.005, rank 1: 0.001)"),
            "{stderr}"
        );
    }
    assert!(
        !a.run.output_dir.join("metrics.jsonl").exists(),
        "nothing trained"
    );
    let _ = std::fs::remove_dir_all(&a.run.output_dir);
}

/// Bad launches give one clear error each, at once or within the timeout, never a hang.
#[test]
fn bad_launches_fail_with_one_clear_error() {
    let recipe = quick_recipe("dp-bad-launch", &["distributed.timeout_s=3"]);
    let error = |mut rank: Rank| {
        let (status, stderr) = rank.wait(Duration::from_secs(60));
        assert!(!status.success(), "{stderr}");
        stderr
    };

    // A rank outside the world.
    let stderr = error(start_rank(&recipe, 2, 2, free_port(), &[]));
    assert!(
        stderr.contains("`distributed.node_rank`: 2 (must be below nnodes = 2"),
        "{stderr}"
    );

    // Nobody at the master's address: the timeout, then one error.
    let started = Instant::now();
    let stderr = error(start_rank(&recipe, 1, 2, free_port(), &[]));
    assert!(
        stderr.contains("cannot reach the master (rank 0)"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // The master port already taken.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let stderr = error(start_rank(&recipe, 0, 2, port, &[]));
    assert!(
        stderr.contains(&format!("port {port} on this machine is in use")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&recipe.run.output_dir);
}
