//! Running untrusted Python (HumanEval completions) in a separate, confined `python3` process.
//!
//! Every program runs in a fresh private temporary directory (mode 0700, removed afterwards) with
//! a cleared environment (`PATH=/usr/bin:/bin`, `LANG=C.UTF-8`, `HOME`/`TMPDIR` = that directory),
//! stdin closed, stdout/stderr captured to files there, and `python3 -I -B` (isolated mode: no
//! `PYTHON*` variables, no user site, no script directory on `sys.path`; no bytecode writes).
//!
//! What is enforced where:
//!
//! | protection | mechanism | where |
//! |---|---|---|
//! | wall-clock timeout | the child leads a new session; on timeout the whole process group gets `SIGKILL` | every Unix |
//! | CPU time, address space (1 GiB), file size, open files, no core dumps | `setrlimit` before `exec` | every Unix |
//! | process count | `RLIMIT_NPROC` | every Unix, **except for root** (the kernel exempts uid 0) |
//! | no new processes | seccomp filter: `fork`, `vfork`, `clone` without `CLONE_THREAD` → `EPERM`, `clone3` → `ENOSYS` (glibc falls back to `clone` for threads) | Linux x86_64 / aarch64 |
//! | no writes outside the temp dir, no reads outside the system and Python directories (and a few files of `/etc` and `/dev`), no ptrace-class access to outside processes | Landlock (ABI ≥ 1) | Linux ≥ 5.13 with Landlock enabled |
//! | no TCP bind / connect | Landlock network rules (ABI ≥ 4) | Linux ≥ 6.7 |
//! | no signals to / abstract sockets of outside processes | Landlock scopes (ABI ≥ 6) | Linux ≥ 6.12 |
//! | no network at all | new user + network namespace (`unshare`), only a down loopback inside; new network namespace alone when user namespaces are refused but the caller may (root) | Linux where namespaces are allowed |
//! | the child dies with its parent | `PR_SET_PDEATHSIG` | Linux |
//!
//! Each Linux protection is best effort: one the kernel refuses is skipped, and [`Protections`]
//! (reported with every run and in `results.json`) says which were in force. A missing `python3`,
//! or one that cannot start inside the sandbox, is an error up front, not a 0 % pass rate.

#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod seccomp;

#[cfg(target_os = "linux")]
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Error, Result};

/// Resource limits of one sandboxed run.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Wall-clock limit; the process group is killed when it passes.
    pub timeout: Duration,
    /// `RLIMIT_AS`: address space in bytes.
    pub memory_bytes: u64,
    /// `RLIMIT_FSIZE`: largest file the program may write.
    pub max_file_bytes: u64,
    /// `RLIMIT_NPROC` (processes and threads of the user; not enforced for root).
    pub max_processes: u64,
    /// `RLIMIT_NOFILE`.
    pub max_open_files: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            memory_bytes: 1 << 30,
            max_file_bytes: 16 << 20,
            max_processes: 64,
            max_open_files: 256,
        }
    }
}

/// Which protections a run had (see the module docs for what each covers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Protections {
    /// CPU, address-space, file-size, open-file and core-dump limits.
    pub rlimits: bool,
    /// `RLIMIT_NPROC` is effective (false for root, whom the kernel exempts).
    pub process_limit: bool,
    /// The seccomp filter refusing new processes.
    pub no_fork: bool,
    /// `no_new_privs`: set-uid binaries cannot raise privileges.
    pub no_new_privileges: bool,
    /// A new user namespace.
    pub user_namespace: bool,
    /// A new network namespace: no interfaces but a down loopback.
    pub network_namespace: bool,
    /// Landlock ABI version in force (0 = Landlock not enforced).
    pub landlock_abi: u32,
    /// Landlock file-system rules: writes only in the temp dir, reads only in system/Python dirs.
    pub landlock_filesystem: bool,
    /// Landlock TCP rules: no bind, no connect.
    pub landlock_network: bool,
    /// Landlock scopes: no signals to, no abstract Unix sockets of, outside processes.
    pub landlock_scoped: bool,
}

impl Protections {
    /// Whether the program could not write outside its temp dir.
    pub fn filesystem_confined(&self) -> bool {
        self.landlock_filesystem
    }

    /// Whether the program had no network.
    pub fn network_confined(&self) -> bool {
        self.network_namespace || self.landlock_network
    }

    /// Whether the program could not start processes (seccomp or an effective `RLIMIT_NPROC`).
    pub fn processes_confined(&self) -> bool {
        self.no_fork || self.process_limit
    }
}

/// How a sandboxed program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (e.g. `SIGXCPU`, `SIGXFSZ`, `SIGSEGV`).
    Signalled(i32),
    /// Killed by the wall-clock timeout.
    TimedOut,
}

/// The result of one sandboxed run.
#[derive(Debug, Clone)]
pub struct Execution {
    pub outcome: Outcome,
    /// The tail of stdout (at most [`OUTPUT_TAIL`] bytes).
    pub stdout: String,
    /// The tail of stderr (at most [`OUTPUT_TAIL`] bytes).
    pub stderr: String,
    pub seconds: f64,
    pub protections: Protections,
}

impl Execution {
    /// Exit status 0.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }

    /// A one-line summary: the outcome and the last line of stderr.
    pub fn summary(&self) -> String {
        let last = self.stderr.lines().rev().find(|l| !l.trim().is_empty());
        let outcome = match self.outcome {
            Outcome::Exited(code) => format!("exit {code}"),
            Outcome::Signalled(signal) => format!("signal {signal}"),
            Outcome::TimedOut => "timed out".to_string(),
        };
        match last {
            Some(line) => format!("{outcome}: {}", line.trim()),
            None => outcome,
        }
    }
}

/// Bytes of each captured stream kept (the end, where Python prints the exception).
pub const OUTPUT_TAIL: usize = 16 * 1024;

/// What Python may read and execute from under Landlock, besides its own prefixes: the system
/// directories, and single files of `/etc` and `/dev` only. The sandboxed process keeps the
/// caller's uid, so when that is root it would pass the owner check of `/etc/shadow` or a raw
/// disk under `/dev`; Landlock keeps those out of reach. (`/proc` is safe to list: Landlock also
/// denies ptrace-class access, such as another process's `environ` or `mem`, outside the domain.)
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
    /// Landlock ABI of the running kernel (0 when unavailable).
    landlock_abi: u32,
}

impl Sandbox {
    /// Finds the interpreter (`python`, else `python3` on `PATH`), asks it for its real path and
    /// prefixes, and checks that it starts inside the sandbox.
    pub fn new(python: Option<&Path>, limits: SandboxLimits) -> Result<Self> {
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
            landlock_abi: landlock_abi(),
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

    /// Runs `program` as a script; errors only when the sandbox itself cannot be set up (the
    /// program's own failures are [`Outcome`]s).
    pub fn run_python(&self, program: &str) -> Result<Execution> {
        let dir = TempDir::create()?;
        let script = dir.path.join("program.py");
        write_file(&script, program.as_bytes())?;
        let stdout_path = dir.path.join("stdout.txt");
        let stderr_path = dir.path.join("stderr.txt");
        let stdout = create_file(&stdout_path)?;
        let stderr = create_file(&stderr_path)?;

        let mut command = Command::new(&self.python);
        command
            .args(["-I", "-B"])
            .arg(&script)
            .current_dir(&dir.path)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", &dir.path)
            .env("TMPDIR", &dir.path)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let started = Instant::now();
        let (outcome, protections) = self.spawn_and_wait(command, &dir.path)?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Execution {
            outcome,
            stdout: read_tail(&stdout_path),
            stderr: read_tail(&stderr_path),
            seconds,
            protections,
        })
    }

    #[cfg(unix)]
    fn spawn_and_wait(&self, mut command: Command, dir: &Path) -> Result<(Outcome, Protections)> {
        use std::os::unix::process::{CommandExt, ExitStatusExt};

        let confinement = confine::Confinement::prepare(self, dir)?;
        let report = confine::ReportPipe::new()?;
        let writer = report.writer();
        // SAFETY: the hook runs in the forked child before `exec`; `Confinement::apply` makes
        // only async-signal-safe system calls on memory prepared before the fork (no allocation,
        // no locks), as `pre_exec` requires.
        unsafe {
            command.pre_exec(move || confinement.apply(writer));
        }
        let spawned = command.spawn();
        let protections = report.finish();
        let mut child = spawned.map_err(|source| Error::Io {
            path: self.python.clone(),
            source,
        })?;
        let group = child.id() as libc::pid_t;
        let deadline = Instant::now() + self.limits.timeout;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => break None,
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(source) => {
                    kill_group(group);
                    let _ = child.wait();
                    return Err(Error::Io {
                        path: self.python.clone(),
                        source,
                    });
                }
            }
        };
        // Also on a normal exit: whatever the program left running in its group goes too.
        kill_group(group);
        let outcome = match status {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(signal)) => Outcome::Signalled(signal),
                (None, None) => Outcome::Exited(-1),
            },
            None => {
                let _ = child.wait();
                Outcome::TimedOut
            }
        };
        Ok((outcome, protections))
    }

    #[cfg(not(unix))]
    fn spawn_and_wait(&self, _command: Command, _dir: &Path) -> Result<(Outcome, Protections)> {
        Err(Error::invalid(
            "sandbox",
            std::env::consts::OS,
            "running untrusted programs needs a Unix system (process groups and rlimits)",
        ))
    }
}

/// `SIGKILL` to every process of the group (the group outlives its leader's exit).
#[cfg(unix)]
fn kill_group(group: libc::pid_t) {
    // SAFETY: plain system call; ESRCH (no such group) is the expected case after a clean exit.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// The child-side setup: everything is built before the fork so that the `pre_exec` hook does not
/// allocate.
#[cfg(unix)]
mod confine {
    use std::path::Path;

    #[cfg(target_os = "linux")]
    use super::path_cstring;
    use super::{Protections, Sandbox};
    use crate::{Error, Result};

    const RLIMITS: u32 = 1 << 0;
    const PROCESS_LIMIT: u32 = 1 << 1;
    const NO_FORK: u32 = 1 << 2;
    const NO_NEW_PRIVS: u32 = 1 << 3;
    const USER_NS: u32 = 1 << 4;
    const NET_NS: u32 = 1 << 5;
    const LANDLOCK_FS: u32 = 1 << 6;
    const LANDLOCK_NET: u32 = 1 << 7;
    const LANDLOCK_SCOPED: u32 = 1 << 8;

    pub struct Confinement {
        cpu_seconds: u64,
        memory_bytes: u64,
        max_file_bytes: u64,
        max_processes: u64,
        max_open_files: u64,
        #[cfg(target_os = "linux")]
        landlock: Option<super::landlock::Ruleset>,
        #[cfg(target_os = "linux")]
        seccomp: Option<super::seccomp::Filter>,
    }

    impl Confinement {
        pub fn prepare(sandbox: &Sandbox, dir: &Path) -> Result<Self> {
            let limits = &sandbox.limits;
            // CPU time a little above the wall-clock limit: the timeout is the real bound, this
            // one stops a program that escaped the process group.
            let cpu_seconds = limits.timeout.as_secs() + 2;
            #[cfg(target_os = "linux")]
            let landlock = if sandbox.landlock_abi > 0 {
                let reads = sandbox
                    .read_roots
                    .iter()
                    .map(|p| {
                        Ok(super::landlock::Readable {
                            path: path_cstring(p)?,
                            is_dir: p.is_dir(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(super::landlock::Ruleset::new(
                    sandbox.landlock_abi,
                    path_cstring(dir)?,
                    reads,
                ))
            } else {
                None
            };
            #[cfg(not(target_os = "linux"))]
            let _ = dir;
            Ok(Self {
                cpu_seconds,
                memory_bytes: limits.memory_bytes,
                max_file_bytes: limits.max_file_bytes,
                max_processes: limits.max_processes,
                max_open_files: limits.max_open_files,
                #[cfg(target_os = "linux")]
                landlock,
                #[cfg(target_os = "linux")]
                seccomp: super::seccomp::Filter::no_fork(),
            })
        }

        /// Runs in the child between `fork` and `exec`: async-signal-safe calls only.
        pub fn apply(&self, report: libc::c_int) -> std::io::Result<()> {
            // SAFETY: all calls below are async-signal-safe system calls on values owned by
            // `self`, which the child inherited intact from the parent.
            unsafe {
                // A new session makes the child a process-group leader: the timeout kills the
                // group, grandchildren included.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut flags = 0u32;
                set_limit(libc::RLIMIT_CPU, self.cpu_seconds)?;
                set_limit(libc::RLIMIT_AS, self.memory_bytes)?;
                set_limit(libc::RLIMIT_FSIZE, self.max_file_bytes)?;
                set_limit(libc::RLIMIT_NOFILE, self.max_open_files)?;
                set_limit(libc::RLIMIT_CORE, 0)?;
                flags |= RLIMITS;
                if set_limit(libc::RLIMIT_NPROC, self.max_processes).is_ok() && libc::geteuid() != 0
                {
                    flags |= PROCESS_LIMIT;
                }
                #[cfg(target_os = "linux")]
                {
                    flags |= self.apply_linux();
                }
                let bytes = flags.to_le_bytes();
                libc::write(report, bytes.as_ptr().cast(), bytes.len());
            }
            Ok(())
        }

        /// The Linux-only, best-effort layers; returns the flags of those in force.
        #[cfg(target_os = "linux")]
        unsafe fn apply_linux(&self) -> u32 {
            let mut flags = 0;
            // SAFETY: async-signal-safe system calls on memory owned by `self` (see `apply`).
            unsafe {
                let one: libc::c_ulong = 1;
                let zero: libc::c_ulong = 0;
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    zero,
                    zero,
                    zero,
                );
                let no_new_privs =
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) == 0;
                if no_new_privs {
                    flags |= NO_NEW_PRIVS;
                }
                if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
                    flags |= USER_NS | NET_NS;
                } else if libc::unshare(libc::CLONE_NEWNET) == 0 {
                    flags |= NET_NS;
                }
                // Landlock and seccomp both need `no_new_privs` when unprivileged.
                if let Some(ruleset) = &self.landlock
                    && no_new_privs
                {
                    let enforced = ruleset.restrict_self();
                    if enforced.filesystem {
                        flags |= LANDLOCK_FS;
                    }
                    if enforced.network {
                        flags |= LANDLOCK_NET;
                    }
                    if enforced.scoped {
                        flags |= LANDLOCK_SCOPED;
                    }
                }
                if let Some(filter) = &self.seccomp
                    && no_new_privs
                    && filter.install()
                {
                    flags |= NO_FORK;
                }
            }
            flags
        }
    }

    /// The type libc gives `RLIMIT_*` on this target.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    type Resource = libc::__rlimit_resource_t;
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    type Resource = libc::c_int;

    /// # Safety
    /// A plain `setrlimit`; async-signal-safe.
    unsafe fn set_limit(resource: Resource, value: u64) -> std::io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: `limit` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// A close-on-exec pipe on which the child reports the protections it put in place; the
    /// write end closes at `exec`, so the parent's read ends there.
    pub struct ReportPipe {
        read: libc::c_int,
        write: libc::c_int,
    }

    impl ReportPipe {
        pub fn new() -> Result<Self> {
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: `fds` has room for the two descriptors the call writes.
            #[cfg(target_os = "linux")]
            let failed = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0;
            // Without pipe2 (macOS) close-on-exec comes a moment later: a fork by another thread
            // in between only delays our read until that child's exit.
            // SAFETY: as above; fcntl on the descriptors just made.
            #[cfg(not(target_os = "linux"))]
            let failed = unsafe {
                libc::pipe(fds.as_mut_ptr()) != 0
                    || libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC) != 0
                    || libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC) != 0
            };
            if failed {
                return Err(Error::Io {
                    path: "pipe".into(),
                    source: std::io::Error::last_os_error(),
                });
            }
            Ok(Self {
                read: fds[0],
                write: fds[1],
            })
        }

        pub fn writer(&self) -> libc::c_int {
            self.write
        }

        /// After the spawn: closes our write end and reads the child's report (empty when the
        /// child never reached the end of its setup).
        pub fn finish(self) -> Protections {
            let mut bytes = [0u8; 4];
            let mut filled = 0;
            // SAFETY: both descriptors are ours; the buffer outlives the reads.
            unsafe {
                libc::close(self.write);
                while filled < bytes.len() {
                    let n = libc::read(
                        self.read,
                        bytes[filled..].as_mut_ptr().cast(),
                        bytes.len() - filled,
                    );
                    if n > 0 {
                        filled += n as usize;
                    } else if n < 0
                        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                    {
                        continue;
                    } else {
                        break;
                    }
                }
                libc::close(self.read);
            }
            if filled < bytes.len() {
                return Protections::default();
            }
            decode(u32::from_le_bytes(bytes), landlock_abi_in_force())
        }
    }

    #[cfg(target_os = "linux")]
    fn landlock_abi_in_force() -> u32 {
        super::landlock_abi()
    }

    #[cfg(not(target_os = "linux"))]
    fn landlock_abi_in_force() -> u32 {
        0
    }

    fn decode(flags: u32, abi: u32) -> Protections {
        let landlock_filesystem = flags & LANDLOCK_FS != 0;
        Protections {
            rlimits: flags & RLIMITS != 0,
            process_limit: flags & PROCESS_LIMIT != 0,
            no_fork: flags & NO_FORK != 0,
            no_new_privileges: flags & NO_NEW_PRIVS != 0,
            user_namespace: flags & USER_NS != 0,
            network_namespace: flags & NET_NS != 0,
            landlock_abi: if landlock_filesystem { abi } else { 0 },
            landlock_filesystem,
            landlock_network: flags & LANDLOCK_NET != 0,
            landlock_scoped: flags & LANDLOCK_SCOPED != 0,
        }
    }
}

/// The running kernel's Landlock ABI version (0 when Landlock is unavailable): where it is
/// non-zero, every run is expected to report [`Protections::landlock_filesystem`].
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
            source,
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
            source,
        })?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn create_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The last [`OUTPUT_TAIL`] bytes of a captured stream (lossy UTF-8; empty if unreadable).
fn read_tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(OUTPUT_TAIL);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
