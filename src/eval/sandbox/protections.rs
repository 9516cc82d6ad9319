//! The protections a sandboxed program runs under, which of them strict mode requires, and the
//! record of what one program actually had.
//!
//! The set is decided per program: every protection is attempted for every run, except the
//! Landlock layers a kernel does not offer (TCP rules need Landlock ABI 4, scopes ABI 6); those
//! are *extra* layers over the namespaces and the system-call filter, which already cover the
//! same ground. Strict mode requires every protection that was attempted to be in force.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeMap;

/// One layer of the sandbox (what each one covers is in the [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// CPU time, address space, file size, open files, no core dumps (`setrlimit`).
    ResourceLimits,
    /// `no_new_privs`: no set-uid or file-capability gains; needed by seccomp and Landlock.
    NoNewPrivileges,
    /// seccomp: no new processes, signals only to itself, no tracing, no namespaces or mounts,
    /// no Unix-domain sockets.
    SyscallFilter,
    /// A user namespace in which the program is an unprivileged uid without capabilities.
    UserNamespace,
    /// Its own PID namespace with its own `/proc`: other processes are neither visible nor
    /// reachable.
    PidNamespace,
    /// Its own mount namespace, its directory a size-limited tmpfs (bounded total writes).
    MountNamespace,
    /// Its own network namespace: no interfaces but a down loopback, no abstract sockets of others.
    NetworkNamespace,
    /// Its own IPC namespace (System V IPC, POSIX message queues).
    IpcNamespace,
    /// Landlock file-system rules: writes only in its directory, reads only system and Python
    /// directories.
    LandlockFilesystem,
    /// Landlock TCP rules (ABI 4): no bind, no connect.
    LandlockNetwork,
    /// Landlock scopes (ABI 6): no signals to, no abstract Unix sockets of, outside processes.
    LandlockScope,
}

/// Every protection, in the order they are reported.
pub const ALL: [Protection; 11] = [
    Protection::ResourceLimits,
    Protection::NoNewPrivileges,
    Protection::SyscallFilter,
    Protection::UserNamespace,
    Protection::PidNamespace,
    Protection::MountNamespace,
    Protection::NetworkNamespace,
    Protection::IpcNamespace,
    Protection::LandlockFilesystem,
    Protection::LandlockNetwork,
    Protection::LandlockScope,
];

impl Protection {
    /// The name used in messages, `results.json` and the records.
    pub fn name(self) -> &'static str {
        match self {
            Protection::ResourceLimits => "resource_limits",
            Protection::NoNewPrivileges => "no_new_privileges",
            Protection::SyscallFilter => "syscall_filter",
            Protection::UserNamespace => "user_namespace",
            Protection::PidNamespace => "pid_namespace",
            Protection::MountNamespace => "mount_namespace",
            Protection::NetworkNamespace => "network_namespace",
            Protection::IpcNamespace => "ipc_namespace",
            Protection::LandlockFilesystem => "landlock_filesystem",
            Protection::LandlockNetwork => "landlock_network",
            Protection::LandlockScope => "landlock_scope",
        }
    }

    /// The system calls behind it, for error messages.
    fn mechanism(self) -> &'static str {
        match self {
            Protection::ResourceLimits => "setrlimit",
            Protection::NoNewPrivileges => "prctl(PR_SET_NO_NEW_PRIVS)",
            Protection::SyscallFilter => "prctl(PR_SET_SECCOMP)",
            // One clone makes every namespace: its failure is reported here, the others need it.
            Protection::UserNamespace => {
                "clone(CLONE_NEWUSER | NEWPID | NEWNS | NEWNET | NEWIPC) with a uid/gid map"
            }
            Protection::PidNamespace => "clone(CLONE_NEWPID) and mounting its /proc",
            Protection::MountNamespace => "clone(CLONE_NEWNS) and mounting a tmpfs",
            Protection::NetworkNamespace => "clone(CLONE_NEWNET)",
            Protection::IpcNamespace => "clone(CLONE_NEWIPC)",
            Protection::LandlockFilesystem
            | Protection::LandlockNetwork
            | Protection::LandlockScope => "landlock_restrict_self",
        }
    }

    /// Extra layers: required only where the kernel offers them.
    pub fn is_extra(self) -> bool {
        matches!(
            self,
            Protection::LandlockNetwork | Protection::LandlockScope
        )
    }

    fn index(self) -> usize {
        ALL.iter()
            .position(|&p| p == self)
            .expect("ALL lists every protection")
    }

    /// Parses [`Protection::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened to one protection in one run. On the wire from the child (one `i32` each):
/// 0 applied, > 0 the errno of the failing call, < 0 the other cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Applied,
    /// The system call failed with this errno.
    Failed(i32),
    /// This kernel or platform does not have it (`landlock_abi`: the kernel's Landlock ABI).
    NotOffered {
        landlock_abi: u32,
    },
    /// Not attempted because a protection it builds on is missing.
    NeedsOther(Protection),
    /// Treated as unavailable by the test hook ([`super::Sandbox::new_simulating_unavailable`]).
    Simulated,
}

pub(super) const WIRE_APPLIED: i32 = 0;
pub(super) const WIRE_NOT_OFFERED: i32 = -1;
pub(super) const WIRE_SIMULATED: i32 = -2;
/// `-(100 + index)`: needs the protection at `index`.
pub(super) const WIRE_NEEDS_BASE: i32 = -100;

impl Status {
    pub(super) fn from_wire(code: i32, landlock_abi: u32) -> Self {
        match code {
            WIRE_APPLIED => Status::Applied,
            c if c > 0 => Status::Failed(c),
            WIRE_SIMULATED => Status::Simulated,
            c if c <= WIRE_NEEDS_BASE => usize::try_from(WIRE_NEEDS_BASE - c)
                .ok()
                .and_then(|i| ALL.get(i).copied())
                .map_or(Status::NotOffered { landlock_abi }, Status::NeedsOther),
            _ => Status::NotOffered { landlock_abi },
        }
    }

    /// Why a protection with this status is not in force (empty when it is).
    fn reason(self, protection: Protection) -> String {
        match self {
            Status::Applied => String::new(),
            Status::Failed(errno) => format!(
                "{} failed: {}",
                protection.mechanism(),
                std::io::Error::from_raw_os_error(errno)
            ),
            Status::NotOffered { landlock_abi } if cfg!(target_os = "linux") => {
                format!("not offered by this kernel (Landlock ABI {landlock_abi})")
            }
            Status::NotOffered { .. } => {
                format!("not available on {}", std::env::consts::OS)
            }
            Status::NeedsOther(other) => format!("needs {other}, which is missing"),
            Status::Simulated => "simulated as unavailable (test hook)".into(),
        }
    }
}

/// The protections of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protections {
    status: [Status; ALL.len()],
}

impl Protections {
    /// Every protection with the same status (e.g. none offered on this platform).
    pub(super) fn all(status: Status) -> Self {
        Self {
            status: [status; ALL.len()],
        }
    }

    pub(super) fn set(&mut self, protection: Protection, status: Status) {
        self.status[protection.index()] = status;
    }

    pub fn status(&self, protection: Protection) -> Status {
        self.status[protection.index()]
    }

    /// Whether `protection` was in force.
    pub fn has(&self, protection: Protection) -> bool {
        self.status(protection) == Status::Applied
    }

    /// The protections in force.
    pub fn in_force(&self) -> Vec<Protection> {
        ALL.into_iter().filter(|&p| self.has(p)).collect()
    }

    /// The protections not in force, with the reason.
    pub fn missing(&self) -> Vec<(Protection, String)> {
        ALL.into_iter()
            .filter(|&p| !self.has(p))
            .map(|p| (p, self.status(p).reason(p)))
            .collect()
    }

    /// A protection strict mode requires that is not in force (every one except the extra
    /// layers the kernel does not offer), preferring one that failed itself over one that only
    /// needed it.
    pub fn first_missing_required(&self) -> Option<(Protection, String)> {
        let required_missing = ALL.into_iter().filter(|&p| {
            let status = self.status(p);
            status != Status::Applied
                && !(p.is_extra() && matches!(status, Status::NotOffered { .. }))
        });
        let mut first = None;
        for p in required_missing {
            if !matches!(self.status(p), Status::NeedsOther(_)) {
                first = Some(p);
                break;
            }
            first.get_or_insert(p);
        }
        first.map(|p| (p, self.status(p).reason(p)))
    }
}

/// `{"in_force": [...], "missing": {"name": "reason", ...}}`.
impl Serialize for Protections {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("in_force", &self.in_force())?;
        let missing: BTreeMap<&str, String> = self
            .missing()
            .into_iter()
            .map(|(p, reason)| (p.name(), reason))
            .collect();
        map.serialize_entry("missing", &missing)?;
        map.end()
    }
}

/// The protections of a whole evaluation, for `results.json` (each program's own are in its
/// record).
#[derive(Debug, Clone, Serialize)]
pub struct SandboxSummary {
    /// Whether strict mode was on (every required protection in force, or no program ran).
    pub strict: bool,
    /// Programs run.
    pub programs: usize,
    /// Protections every program ran under.
    pub in_force_for_every_program: Vec<Protection>,
    /// Protection → how many programs ran without it, and the first reason seen.
    pub missing: BTreeMap<Protection, MissingCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingCount {
    pub programs: usize,
    pub reason: String,
}

impl SandboxSummary {
    pub fn new<'a>(strict: bool, runs: impl IntoIterator<Item = &'a Protections>) -> Self {
        let mut programs = 0;
        let mut everywhere = [true; ALL.len()];
        let mut missing: BTreeMap<Protection, MissingCount> = BTreeMap::new();
        for protections in runs {
            programs += 1;
            for (p, reason) in protections.missing() {
                everywhere[p.index()] = false;
                missing
                    .entry(p)
                    .or_insert(MissingCount {
                        programs: 0,
                        reason,
                    })
                    .programs += 1;
            }
        }
        let in_force_for_every_program = if programs == 0 {
            Vec::new()
        } else {
            ALL.into_iter().filter(|p| everywhere[p.index()]).collect()
        };
        Self {
            strict,
            programs,
            in_force_for_every_program,
            missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_wire_codes_decode() {
        for p in ALL {
            assert_eq!(Protection::from_name(p.name()), Some(p));
        }
        assert_eq!(Status::from_wire(0, 6), Status::Applied);
        assert_eq!(Status::from_wire(1, 6), Status::Failed(1));
        assert_eq!(Status::from_wire(-2, 6), Status::Simulated);
        assert_eq!(
            Status::from_wire(WIRE_NEEDS_BASE - 1, 6),
            Status::NeedsOther(Protection::NoNewPrivileges)
        );
        assert_eq!(
            Status::from_wire(-1, 5),
            Status::NotOffered { landlock_abi: 5 }
        );
    }

    #[test]
    fn summary_counts_missing_protections_by_name() {
        let full = Protections::all(Status::Applied);
        let mut weak = full;
        weak.set(Protection::PidNamespace, Status::Failed(libc::EPERM));
        let summary = SandboxSummary::new(false, [&full, &weak, &weak]);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["programs"], 3);
        assert_eq!(json["missing"]["pid_namespace"]["programs"], 2);
        let every = json["in_force_for_every_program"].as_array().unwrap();
        assert_eq!(every.len(), ALL.len() - 1);
        assert!(!every.contains(&"pid_namespace".into()));
        let record = serde_json::to_value(weak).unwrap();
        assert!(
            record["missing"]["pid_namespace"]
                .as_str()
                .unwrap()
                .contains("not permitted")
        );
    }

    #[test]
    fn strict_needs_all_but_unoffered_extras() {
        let mut p = Protections::all(Status::Applied);
        assert_eq!(p.first_missing_required(), None);
        p.set(
            Protection::LandlockScope,
            Status::NotOffered { landlock_abi: 5 },
        );
        assert_eq!(p.first_missing_required(), None);
        p.set(Protection::LandlockScope, Status::Failed(libc::EPERM));
        assert_eq!(
            p.first_missing_required().map(|m| m.0),
            Some(Protection::LandlockScope)
        );
        p.set(Protection::LandlockScope, Status::Applied);
        p.set(Protection::PidNamespace, Status::Simulated);
        let (missing, reason) = p.first_missing_required().unwrap();
        assert_eq!(missing, Protection::PidNamespace);
        assert!(reason.contains("simulated"), "{reason}");
        // The cause is named, not what depended on it.
        p.set(
            Protection::PidNamespace,
            Status::NeedsOther(Protection::MountNamespace),
        );
        p.set(Protection::MountNamespace, Status::Failed(libc::EPERM));
        let (missing, reason) = p.first_missing_required().unwrap();
        assert_eq!(missing, Protection::MountNamespace);
        assert!(reason.contains("tmpfs"), "{reason}");
    }
}
