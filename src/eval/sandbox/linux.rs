//! Starting one confined program on Linux.
//!
//! The harness `clone`s the child straight into new user, PID, mount, network and IPC
//! namespaces (one process: the program is PID 1 of its namespace, and killing it takes down
//! anything it left behind). Between `clone` and `exec` the child, with system calls only (the
//! harness is multi-threaded, so nothing may allocate or take a lock):
//!
//! 1. puts its stdin (the token and the program), stdout, stderr and fd 3 (the verdict) in place
//!    and marks every other descriptor close-on-exec;
//! 2. starts a new session (its own process group);
//! 3. maps the caller's uid/gid to 1000 inside (so `exec` drops every capability), makes all
//!    mounts private, mounts a size-limited tmpfs over its directory (noexec) and its own `/proc`;
//! 4. enters the directory, sets the rlimits, dies with the harness (`PR_SET_PDEATHSIG`, and
//!    exits if the harness is already gone), sets `no_new_privs`, restricts itself with Landlock,
//!    installs the seccomp filter;
//! 5. reports each protection's status on a close-on-exec pipe; in strict mode it exits there
//!    when one is missing, without running the program; otherwise it `exec`s Python.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::landlock::{Readable, Ruleset};
use super::protections::{
    ALL, Protection, Protections, Status, WIRE_APPLIED, WIRE_NEEDS_BASE, WIRE_NOT_OFFERED,
    WIRE_SIMULATED,
};
use super::seccomp::Filter;
use super::{Outcome, Sandbox, SandboxPolicy, Streams, path_cstring};
use crate::{Error, Result};

/// The uid and gid the program has inside its user namespace: not 0, so `exec` leaves it no
/// capabilities there.
const INSIDE_ID: u32 = 1000;

/// Most arguments (and environment variables) the child passes to `exec`; its pointer arrays
/// live on its stack.
const MAX_STRINGS: usize = 7;

/// Kinds of report message.
const REPORT_READY: i32 = 0;
const REPORT_REFUSED: i32 = 1;
const REPORT_SETUP_FAILED: i32 = 2;
const REPORT_EXEC_FAILED: i32 = 3;

/// Setup steps named in a `REPORT_SETUP_FAILED` message.
const STEP_DESCRIPTORS: i32 = 1;
const STEP_SESSION: i32 = 2;
const STEP_DIRECTORY: i32 = 3;
const STEP_HARNESS_GONE: i32 = 4;

/// A report: kind, setup step, errno, then one status per protection.
const REPORT_LEN: usize = 3 + ALL.len();
type Report = [i32; REPORT_LEN];

/// The namespaces the child is cloned into.
const NAMESPACES: [(Protection, libc::c_int); 5] = [
    (Protection::UserNamespace, libc::CLONE_NEWUSER),
    (Protection::PidNamespace, libc::CLONE_NEWPID),
    (Protection::MountNamespace, libc::CLONE_NEWNS),
    (Protection::NetworkNamespace, libc::CLONE_NEWNET),
    (Protection::IpcNamespace, libc::CLONE_NEWIPC),
];

/// Everything the sandboxed child needs to set itself up and exec (arguments, environment, id
/// maps, limits, Landlock and seccomp rules), allocated before the clone.
struct ChildSetup {
    python: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    workdir: CString,
    uid_map: CString,
    gid_map: CString,
    tmpfs_options: CString,
    cpu_seconds: u64,
    memory_bytes: u64,
    max_file_bytes: u64,
    max_open_files: u64,
    landlock: Option<Ruleset>,
    landlock_abi: u32,
    seccomp: Option<Filter>,
    simulated: Option<Protection>,
    strict: bool,
}

/// Runs the sandbox's interpreter with `args` in `dir` under every protection the kernel
/// allows; the program's outcome and its protections, or an error when the sandbox could not
/// start it (strict mode refusing is one).
pub(super) fn run(
    sandbox: &Sandbox,
    dir: &Path,
    args: &[&str],
    streams: &Streams,
) -> Result<(Outcome, Protections)> {
    let mut setup = ChildSetup::new(sandbox, dir, args)?;
    let started = Instant::now();
    let mut report_fds = [0 as libc::c_int; 2];
    // SAFETY: `report_fds` has room for the two descriptors.
    if unsafe { libc::pipe2(report_fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_error("pipe", std::io::Error::last_os_error()));
    }
    let [report_read, report_write] = report_fds;
    let fds = [
        streams.input.as_raw_fd(),
        streams.stdout.as_raw_fd(),
        streams.stderr.as_raw_fd(),
        streams.verdict.as_raw_fd(),
    ];

    let wanted = setup.namespace_flags();
    // SAFETY: a fork-like clone (no new stack: the child continues on a copy of this one); the
    // child runs only `child`, which makes async-signal-safe system calls and never returns.
    let pid = unsafe {
        let mut clone_errno = 0;
        let mut pid = if wanted != 0 { raw_clone(wanted) } else { -1 };
        if wanted != 0 && pid < 0 {
            clone_errno = errno();
        }
        if pid < 0 {
            pid = raw_clone(0);
        }
        if pid == 0 {
            let flags = if clone_errno == 0 { wanted } else { 0 };
            child(&mut setup, fds, report_write, flags, clone_errno);
        }
        pid
    };
    let spawn_error = (pid < 0).then(std::io::Error::last_os_error);
    // SAFETY: our copy of the write end; the child keeps its own until `exec` or exit.
    unsafe { libc::close(report_write) };
    if let Some(source) = spawn_error {
        // SAFETY: our read end, unused.
        unsafe { libc::close(report_read) };
        return Err(io_error(&sandbox.python.display().to_string(), source));
    }
    let report = read_report(report_read);
    let protections = decode(report.as_ref(), setup.landlock_abi);
    let kind = report.map_or(-1, |r| r[0]);
    if kind != REPORT_READY {
        reap(pid, None);
        return Err(setup_error(sandbox, report, &protections));
    }
    let outcome = wait(pid, started + sandbox.limits.timeout);
    Ok((outcome, protections))
}

impl ChildSetup {
    fn new(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Result<Self> {
        let limits = &sandbox.limits;
        let cstring = |s: &str| {
            CString::new(s).map_err(|_| Error::invalid("sandbox argument", s, "contains a NUL"))
        };
        let mut argv = vec![path_cstring(&sandbox.python)?];
        for a in args {
            argv.push(cstring(a)?);
        }
        let dir_text = dir.to_str().ok_or_else(|| Error::BadFile {
            path: dir.to_path_buf(),
            message: "temporary directory path is not UTF-8".into(),
        })?;
        let envp = vec![
            cstring("PATH=/usr/bin:/bin")?,
            cstring("LANG=C.UTF-8")?,
            cstring(&format!("HOME={dir_text}"))?,
            cstring(&format!("TMPDIR={dir_text}"))?,
        ];
        if argv.len() > MAX_STRINGS || envp.len() > MAX_STRINGS {
            return Err(Error::invalid(
                "sandbox arguments",
                argv.len().max(envp.len()),
                format!("at most {MAX_STRINGS}"),
            ));
        }
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let landlock_abi = super::landlock_abi();
        let landlock = (landlock_abi > 0)
            .then(|| {
                let reads = sandbox
                    .read_roots
                    .iter()
                    .map(|p| {
                        Ok(Readable {
                            path: path_cstring(p)?,
                            is_dir: p.is_dir(),
                            only_with_private_proc: p == Path::new("/proc"),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok::<_, Error>(Ruleset::new(landlock_abi, path_cstring(dir)?, reads))
            })
            .transpose()?;
        Ok(Self {
            python: path_cstring(&sandbox.python)?,
            argv,
            envp,
            workdir: path_cstring(dir)?,
            uid_map: cstring(&format!("{INSIDE_ID} {uid} 1\n"))?,
            gid_map: cstring(&format!("{INSIDE_ID} {gid} 1\n"))?,
            tmpfs_options: cstring(&format!(
                "size={},nr_inodes={},mode=0700",
                limits.max_disk_bytes, limits.max_disk_files
            ))?,
            // A little above the wall-clock limit: the timeout is the real bound, this one
            // stops a program that somehow outlived it.
            cpu_seconds: limits.timeout.as_secs() + 2,
            memory_bytes: limits.memory_bytes,
            max_file_bytes: limits.max_file_bytes,
            max_open_files: limits.max_open_files,
            landlock,
            landlock_abi,
            seccomp: Filter::new(),
            simulated: sandbox.simulated,
            strict: sandbox.policy == SandboxPolicy::Strict,
        })
    }

    /// The `clone` flags to try: every namespace not simulated away; none without the user
    /// namespace, which the others need to be set up unprivileged.
    fn namespace_flags(&self) -> libc::c_int {
        if self.simulated == Some(Protection::UserNamespace) {
            return 0;
        }
        NAMESPACES
            .iter()
            .filter(|(p, _)| self.simulated != Some(*p))
            .fold(0, |flags, (_, flag)| flags | flag)
    }
}

/// `clone` with `flags` (plus `SIGCHLD`) and no new stack, like `fork`.
///
/// # Safety
/// In the child, only async-signal-safe calls may follow.
unsafe fn raw_clone(flags: libc::c_int) -> libc::pid_t {
    let flags = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: null stack and pointers: the child runs on a copy-on-write copy of this stack.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) as libc::pid_t
    }
}

/// The calling thread's errno.
fn errno() -> i32 {
    // SAFETY: reading the thread-local errno.
    unsafe { *libc::__errno_location() }
}

/// The child between `clone` and `exec` (see the module docs). Never returns.
///
/// # Safety
/// Only in the child of `raw_clone`: async-signal-safe system calls on memory allocated before
/// the clone.
unsafe fn child(
    setup: &mut ChildSetup,
    fds: [libc::c_int; 4],
    report_fd: libc::c_int,
    namespaces: libc::c_int,
    clone_errno: i32,
) -> ! {
    let mut report: Report = [0; REPORT_LEN];
    report[0] = REPORT_READY;
    // SAFETY: system calls on descriptors and C strings prepared before the clone.
    unsafe {
        // 1. Descriptors: first above 3 (a source may itself be 0..=3), then into place.
        let report_fd = libc::fcntl(report_fd, libc::F_DUPFD_CLOEXEC, 10);
        if report_fd < 0 {
            libc::_exit(126);
        }
        let fail = |report: &mut Report, step: i32| -> ! {
            report[0] = REPORT_SETUP_FAILED;
            report[1] = step;
            report[2] = errno();
            write_report(report_fd, report);
            libc::_exit(126)
        };
        let mut moved = [0; 4];
        for (slot, &fd) in moved.iter_mut().zip(&fds) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
            if *slot < 0 {
                fail(&mut report, STEP_DESCRIPTORS);
            }
        }
        for (target, &fd) in moved.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                fail(&mut report, STEP_DESCRIPTORS);
            }
        }
        // Everything else closes at exec: descriptors another thread opened without
        // O_CLOEXEC, or that the harness inherited (cargo's jobserver pipes).
        if libc::syscall(
            libc::SYS_close_range,
            4 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        ) != 0
        {
            let mut limit = std::mem::zeroed::<libc::rlimit>();
            let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(1 << 20) as libc::c_int
            } else {
                1024
            };
            for fd in 4..top {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }

        // 2. Its own session and process group; the signal mask and SIGPIPE as a fresh
        // process has them (exec keeps both, and the harness may have changed them).
        if libc::setsid() < 0 {
            fail(&mut report, STEP_SESSION);
        }
        let mut no_signals = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut no_signals);
        libc::sigprocmask(libc::SIG_SETMASK, &no_signals, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);

        // 3. Namespaces.
        for (p, flag) in NAMESPACES {
            let code = if setup.simulated == Some(p) {
                WIRE_SIMULATED
            } else if namespaces & flag != 0 {
                WIRE_APPLIED
            } else if p == Protection::UserNamespace {
                clone_errno.max(1)
            } else {
                // Set up together with the user namespace, which failed or was simulated away.
                needs(Protection::UserNamespace)
            };
            set(&mut report, p, code);
        }
        let in_user_ns = namespaces & libc::CLONE_NEWUSER != 0;
        if in_user_ns {
            let mapped = write_file(c"/proc/self/setgroups", c"deny")
                .and_then(|()| write_file(c"/proc/self/uid_map", &setup.uid_map))
                .and_then(|()| write_file(c"/proc/self/gid_map", &setup.gid_map));
            if let Err(e) = mapped {
                for (p, flag) in NAMESPACES {
                    if namespaces & flag != 0 {
                        let code = if p == Protection::UserNamespace {
                            e
                        } else {
                            needs(Protection::UserNamespace)
                        };
                        set(&mut report, p, code);
                    }
                }
            }
        }
        let user_ok = report[3 + index(Protection::UserNamespace)] == WIRE_APPLIED;
        if namespaces & libc::CLONE_NEWNS != 0 {
            // Private first, so nothing mounted here shows up outside.
            let code = if !user_ok {
                needs(Protection::UserNamespace)
            } else if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
                || libc::mount(
                    c"tmpfs".as_ptr(),
                    setup.workdir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    setup.tmpfs_options.as_ptr().cast(),
                ) != 0
            {
                errno()
            } else {
                WIRE_APPLIED
            };
            set(&mut report, Protection::MountNamespace, code);
        }
        if namespaces & libc::CLONE_NEWPID != 0 {
            // Its own /proc: mounted from inside the PID namespace, so it lists only its
            // processes (needs the mount namespace, to hide the host's /proc).
            let code = if report[3 + index(Protection::MountNamespace)] != WIRE_APPLIED {
                needs(Protection::MountNamespace)
            } else if libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ) != 0
            {
                errno()
            } else {
                WIRE_APPLIED
            };
            set(&mut report, Protection::PidNamespace, code);
        }

        // 4. Its directory (the tmpfs, when mounted), limits, and the last two layers.
        if libc::chdir(setup.workdir.as_ptr()) != 0 {
            fail(&mut report, STEP_DIRECTORY);
        }
        let code = if setup.simulated == Some(Protection::ResourceLimits) {
            WIRE_SIMULATED
        } else {
            set_limits(setup)
        };
        set(&mut report, Protection::ResourceLimits, code);

        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        // The harness may have died before that took effect: its end of the report pipe is
        // then closed.
        let mut poll = libc::pollfd {
            fd: report_fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        if libc::poll(&mut poll, 1, 0) > 0 && poll.revents & libc::POLLERR != 0 {
            fail(&mut report, STEP_HARNESS_GONE);
        }

        let no_new_privs = if setup.simulated == Some(Protection::NoNewPrivileges) {
            WIRE_SIMULATED
        } else if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 {
            WIRE_APPLIED
        } else {
            errno()
        };
        set(&mut report, Protection::NoNewPrivileges, no_new_privs);

        let private_proc = report[3 + index(Protection::PidNamespace)] == WIRE_APPLIED;
        let layers = [
            Protection::LandlockFilesystem,
            Protection::LandlockNetwork,
            Protection::LandlockScope,
        ];
        match &setup.landlock {
            _ if setup.simulated == Some(Protection::LandlockFilesystem) => {
                for p in layers {
                    set(&mut report, p, WIRE_SIMULATED);
                }
            }
            None => {
                for p in layers {
                    set(&mut report, p, WIRE_NOT_OFFERED);
                }
            }
            Some(_) if no_new_privs != WIRE_APPLIED => {
                for p in layers {
                    set(&mut report, p, needs(Protection::NoNewPrivileges));
                }
            }
            Some(ruleset) => {
                let network =
                    ruleset.has_network() && setup.simulated != Some(Protection::LandlockNetwork);
                let scopes =
                    ruleset.has_scopes() && setup.simulated != Some(Protection::LandlockScope);
                let code = match ruleset.restrict_self(private_proc, network, scopes) {
                    Ok(()) => WIRE_APPLIED,
                    Err(e) => e,
                };
                set(&mut report, Protection::LandlockFilesystem, code);
                let layer = |offered: bool, p: Protection| {
                    if !offered {
                        WIRE_NOT_OFFERED
                    } else if setup.simulated == Some(p) {
                        WIRE_SIMULATED
                    } else {
                        code
                    }
                };
                let net = layer(ruleset.has_network(), Protection::LandlockNetwork);
                let scope = layer(ruleset.has_scopes(), Protection::LandlockScope);
                set(&mut report, Protection::LandlockNetwork, net);
                set(&mut report, Protection::LandlockScope, scope);
            }
        }

        let filter = if setup.simulated == Some(Protection::SyscallFilter) {
            WIRE_SIMULATED
        } else if no_new_privs != WIRE_APPLIED {
            needs(Protection::NoNewPrivileges)
        } else {
            match &mut setup.seccomp {
                None => WIRE_NOT_OFFERED,
                // Its own pid as it sees it: 1 in its PID namespace.
                Some(filter) => {
                    if filter.install(libc::getpid()) {
                        WIRE_APPLIED
                    } else {
                        errno()
                    }
                }
            }
        };
        set(&mut report, Protection::SyscallFilter, filter);

        // 5. Report; refuse or run.
        if setup.strict && refuses(&report) {
            report[0] = REPORT_REFUSED;
            write_report(report_fd, &report);
            libc::_exit(125);
        }
        write_report(report_fd, &report);
        let mut argv = [std::ptr::null::<libc::c_char>(); MAX_STRINGS + 1];
        for (slot, a) in argv.iter_mut().zip(&setup.argv) {
            *slot = a.as_ptr();
        }
        let mut envp = [std::ptr::null::<libc::c_char>(); MAX_STRINGS + 1];
        for (slot, e) in envp.iter_mut().zip(&setup.envp) {
            *slot = e.as_ptr();
        }
        libc::execve(setup.python.as_ptr(), argv.as_ptr(), envp.as_ptr());
        report[0] = REPORT_EXEC_FAILED;
        report[2] = errno();
        write_report(report_fd, &report);
        libc::_exit(127)
    }
}

fn index(p: Protection) -> usize {
    ALL.iter().position(|&q| q == p).unwrap_or(0)
}

fn set(report: &mut Report, p: Protection, code: i32) {
    report[3 + index(p)] = code;
}

/// The wire code "not attempted: needs `p`".
fn needs(p: Protection) -> i32 {
    WIRE_NEEDS_BASE - index(p) as i32
}

/// Whether strict mode refuses this report (as [`Protections::first_missing_required`], on
/// wire codes, without allocating).
fn refuses(report: &Report) -> bool {
    ALL.iter()
        .zip(&report[3..])
        .any(|(p, &code)| code != WIRE_APPLIED && !(p.is_extra() && code == WIRE_NOT_OFFERED))
}

/// The rlimits; 0 or the errno of the first that failed.
///
/// # Safety
/// Async-signal-safe system calls only.
unsafe fn set_limits(setup: &ChildSetup) -> i32 {
    let limits = [
        (libc::RLIMIT_CPU, setup.cpu_seconds),
        (libc::RLIMIT_AS, setup.memory_bytes),
        (libc::RLIMIT_FSIZE, setup.max_file_bytes),
        (libc::RLIMIT_NOFILE, setup.max_open_files),
        (libc::RLIMIT_CORE, 0),
    ];
    for (resource, value) in limits {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: `limit` is valid for the call.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return errno();
        }
    }
    WIRE_APPLIED
}

/// Writes `text` to an existing file; `Err(errno)` on failure.
///
/// # Safety
/// Async-signal-safe system calls only.
unsafe fn write_file(path: &std::ffi::CStr, text: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: NUL-terminated path and buffer of the given length; the descriptor is closed.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        let bytes = text.to_bytes();
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let error = errno();
        libc::close(fd);
        if written != bytes.len() as isize {
            return Err(error.max(1));
        }
    }
    Ok(())
}

/// One report message (56 bytes, under `PIPE_BUF`: written at once).
///
/// # Safety
/// Async-signal-safe.
unsafe fn write_report(fd: libc::c_int, report: &Report) {
    // SAFETY: the buffer is valid for its size.
    unsafe {
        libc::write(fd, report.as_ptr().cast(), std::mem::size_of::<Report>());
    }
}

/// The child's last report message, read until the pipe closes (at `exec` or exit).
fn read_report(fd: libc::c_int) -> Option<Report> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        // SAFETY: our descriptor; the buffer outlives the call.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n > 0 {
            bytes.extend_from_slice(&buffer[..n as usize]);
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            break;
        }
    }
    // SAFETY: our descriptor, done with.
    unsafe { libc::close(fd) };
    let size = std::mem::size_of::<Report>();
    let last = bytes
        .len()
        .checked_sub(size)
        .filter(|_| bytes.len() % size == 0)?;
    let mut report: Report = [0; REPORT_LEN];
    for (value, chunk) in report.iter_mut().zip(bytes[last..].chunks_exact(4)) {
        *value = i32::from_ne_bytes(chunk.try_into().expect("4-byte chunks"));
    }
    Some(report)
}

fn decode(report: Option<&Report>, landlock_abi: u32) -> Protections {
    let mut protections = Protections::all(Status::NotOffered { landlock_abi });
    if let Some(report) = report {
        for (&p, &code) in ALL.iter().zip(&report[3..]) {
            protections.set(p, Status::from_wire(code, landlock_abi));
        }
    }
    protections
}

/// The error for a child that did not reach `exec`.
fn setup_error(sandbox: &Sandbox, report: Option<Report>, protections: &Protections) -> Error {
    let Some(report) = report else {
        return Error::BadFile {
            path: sandbox.python.clone(),
            message: "the sandbox's child process ended during its setup without a report".into(),
        };
    };
    let os = |errno: i32| std::io::Error::from_raw_os_error(errno);
    match report[0] {
        REPORT_REFUSED => {
            let (protection, reason) = protections
                .first_missing_required()
                .unwrap_or((Protection::ResourceLimits, "unknown".into()));
            super::refusal(protection, &reason)
        }
        REPORT_EXEC_FAILED => io_error(&sandbox.python.display().to_string(), os(report[2])),
        _ => {
            let step = match report[1] {
                STEP_DESCRIPTORS => "setting up its descriptors",
                STEP_SESSION => "starting a session",
                STEP_DIRECTORY => "entering its directory",
                STEP_HARNESS_GONE => "the harness is gone",
                _ => "setup",
            };
            Error::BadFile {
                path: sandbox.python.clone(),
                message: format!(
                    "the sandbox could not start the program ({step}: {})",
                    os(report[2])
                ),
            }
        }
    }
}

fn io_error(path: &str, source: std::io::Error) -> Error {
    Error::Io {
        path: path.into(),
        cause: source,
    }
}

/// Waits for the child until `deadline`, then kills it; kills what is left of its process group
/// before reaping it (so the group id cannot have been reused), and reaps it.
fn wait(pid: libc::pid_t, deadline: Instant) -> Outcome {
    let mut pause = Duration::from_millis(1);
    let exited = loop {
        // SAFETY: `info` is zeroed and valid; WNOWAIT leaves the child to reap below.
        let done = unsafe {
            let mut info = std::mem::zeroed::<libc::siginfo_t>();
            let r = libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            r != 0 || info.si_pid() != 0
        };
        if done {
            break true;
        }
        let now = Instant::now();
        if now >= deadline {
            break false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    reap(pid, Some(exited)).unwrap_or(Outcome::TimedOut)
}

/// Kills the child (unless `exited`) and its group, reaps it and decodes its status.
fn reap(pid: libc::pid_t, exited: Option<bool>) -> Option<Outcome> {
    // SAFETY: signals to our own child and its group (which only it and its descendants can
    // be in: it leads its own session), then reaping it.
    unsafe {
        if exited != Some(true) {
            libc::kill(pid, libc::SIGKILL);
        }
        libc::kill(-pid, libc::SIGKILL);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 && errno() == libc::EINTR {}
        if exited == Some(false) {
            return None;
        }
        Some(if libc::WIFEXITED(status) {
            Outcome::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Outcome::Signalled(libc::WTERMSIG(status))
        } else {
            Outcome::Exited(-1)
        })
    }
}
