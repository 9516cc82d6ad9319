//! Starting a program on Unix systems other than Linux: a new session, the rlimits and the
//! wall-clock timeout only (no namespaces, seccomp or Landlock there), so strict mode refuses
//! before anything runs. Compiled on Linux too, where a unit test runs it.

use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::protections::{Protection, Protections, Status};
use super::{Outcome, Sandbox, SandboxPolicy, Streams};
use crate::{Error, Result};

pub(super) fn run(
    sandbox: &Sandbox,
    dir: &Path,
    args: &[&str],
    streams: &Streams,
) -> Result<(Outcome, Protections)> {
    let mut protections = Protections::all(Status::NotOffered { landlock_abi: 0 });
    protections.set(Protection::ResourceLimits, Status::Applied);
    if sandbox.policy == SandboxPolicy::Strict
        && let Some((protection, reason)) = protections.first_missing_required()
    {
        return Err(super::refusal(protection, &reason));
    }
    let io = |source| Error::Io {
        path: sandbox.python.clone(),
        cause: source,
    };
    let clone = |f: &std::fs::File| f.try_clone().map(Stdio::from).map_err(io);
    let limits = [
        (libc::RLIMIT_CPU, sandbox.limits.timeout.as_secs() + 2),
        (libc::RLIMIT_AS, sandbox.limits.memory_bytes),
        (libc::RLIMIT_FSIZE, sandbox.limits.max_file_bytes),
        (libc::RLIMIT_NOFILE, sandbox.limits.max_open_files),
        (libc::RLIMIT_CORE, 0),
    ];
    let verdict = streams.verdict.as_raw_fd();
    let mut command = Command::new(&sandbox.python);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("HOME", dir)
        .env("TMPDIR", dir)
        .stdin(clone(streams.input)?)
        .stdout(clone(streams.stdout)?)
        .stderr(clone(streams.stderr)?);
    // SAFETY: the hook runs in the forked child before `exec` and makes only async-signal-safe
    // system calls on values copied into it.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (resource, value) in limits {
                let limit = libc::rlimit {
                    rlim_cur: value as libc::rlim_t,
                    rlim_max: value as libc::rlim_t,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // fd 3 carries the verdict (dup2 clears close-on-exec; on fd 3 itself, clear it).
            let ok = if verdict == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(verdict, 3) == 3
            };
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = command.spawn().map_err(io)?;
    let group = child.id() as libc::pid_t;
    let deadline = started + sandbox.limits.timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait().map_err(io)? {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => break None,
            None => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    };
    let outcome = match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(signal)) => Outcome::Signalled(signal),
            (None, None) => Outcome::Exited(-1),
        },
        None => {
            // SAFETY: SIGKILL to the group our still-unreaped child leads.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            Outcome::TimedOut
        }
    };
    Ok((outcome, protections))
}
