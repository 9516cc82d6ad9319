//! Landlock through raw system calls (no crate): file-system rules (write only in the sandbox's
//! directory, read/execute only in the system and Python directories), TCP rules (ABI ≥ 4: no
//! bind or connect) and scopes (ABI ≥ 6: no signals to, no abstract Unix sockets of, processes
//! outside the sandbox). Constants from `<linux/landlock.h>`.

use std::ffi::CString;

const CREATE_RULESET_VERSION: libc::c_ulong = 1 << 0;
const RULE_PATH_BENEATH: libc::c_ulong = 1;

const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
/// ABI 1 handles bits 0..=12 (execute, write/read file, read dir, remove and make everything).
const FS_ABI1: u64 = (1 << 13) - 1;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;

const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;

const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// `struct landlock_ruleset_attr`; the size passed tells the kernel which fields it reads.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The running kernel's Landlock ABI (0 when unsupported or disabled).
pub fn abi_version() -> u32 {
    // SAFETY: the version query reads no memory (null attribute, size 0).
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0 as libc::size_t,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).unwrap_or(0)
}

/// A path the sandbox may read: a directory (read and list everything beneath it) or a file.
pub struct Readable {
    pub path: CString,
    pub is_dir: bool,
    /// Only when the program has its own `/proc` (the host's would list every process).
    pub only_with_private_proc: bool,
}

/// Everything the child needs, prepared before the fork.
pub struct Ruleset {
    abi: u32,
    writable: CString,
    readable: Vec<Readable>,
    dev_null: CString,
}

impl Ruleset {
    pub fn new(abi: u32, writable: CString, readable: Vec<Readable>) -> Self {
        Self {
            abi,
            writable,
            readable,
            dev_null: CString::from(c"/dev/null"),
        }
    }

    fn handled_fs(&self) -> u64 {
        let mut access = FS_ABI1;
        if self.abi >= 2 {
            access |= FS_REFER;
        }
        if self.abi >= 3 {
            access |= FS_TRUNCATE;
        }
        if self.abi >= 5 {
            access |= FS_IOCTL_DEV;
        }
        access
    }

    /// Whether the kernel's ABI has the TCP rules.
    pub fn has_network(&self) -> bool {
        self.abi >= 4
    }

    /// Whether the kernel's ABI has the signal and abstract-socket scopes.
    pub fn has_scopes(&self) -> bool {
        self.abi >= 6
    }

    /// Restricts the calling (child) process: the file-system rules, plus the TCP rules and the
    /// scopes when asked for and the ABI has them; `Err(errno)` when nothing could be enforced.
    /// `private_proc`: whether `/proc` is the program's own (else it stays unreadable).
    /// Async-signal-safe: system calls only.
    ///
    /// # Safety
    /// Call in the forked child before `exec`, after `PR_SET_NO_NEW_PRIVS`.
    pub unsafe fn restrict_self(
        &self,
        private_proc: bool,
        network: bool,
        scopes: bool,
    ) -> Result<(), i32> {
        let fs = self.handled_fs();
        let attr = RulesetAttr {
            handled_access_fs: fs,
            handled_access_net: if network && self.has_network() {
                NET_BIND_TCP | NET_CONNECT_TCP
            } else {
                0
            },
            scoped: if scopes && self.has_scopes() {
                SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
            } else {
                0
            },
        };
        let size: libc::size_t = match self.abi {
            1..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        };
        // SAFETY: `attr` is valid for `size` bytes; the descriptors are ours and closed here.
        unsafe {
            let ruleset = libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0 as libc::c_ulong,
            );
            if ruleset < 0 {
                return Err(errno());
            }
            let ruleset = ruleset as libc::c_int;
            // Rules only widen access, so a path that cannot be added (absent on this system)
            // just stays denied.
            add_rule(ruleset, &self.writable, fs);
            // A file rule may only carry file rights (no READ_DIR), or the kernel refuses it.
            let read_file = (FS_EXECUTE | FS_READ_FILE) & fs;
            for r in self.readable.iter() {
                if r.only_with_private_proc && !private_proc {
                    continue;
                }
                let access = if r.is_dir {
                    read_file | (FS_READ_DIR & fs)
                } else {
                    read_file
                };
                add_rule(ruleset, &r.path, access);
            }
            // Programs may discard output into /dev/null (file rights only: it is not a dir).
            add_rule(
                ruleset,
                &self.dev_null,
                (FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE) & fs,
            );
            let result = if libc::syscall(
                libc::SYS_landlock_restrict_self,
                ruleset as libc::c_long,
                0 as libc::c_ulong,
            ) == 0
            {
                Ok(())
            } else {
                Err(errno())
            };
            libc::close(ruleset);
            result
        }
    }
}

/// The calling thread's errno.
fn errno() -> i32 {
    // SAFETY: reading the thread-local errno.
    unsafe { *libc::__errno_location() }
}

/// Allows `access` beneath `path`; silently skips a path that cannot be opened.
///
/// # Safety
/// `ruleset` is a Landlock ruleset descriptor.
unsafe fn add_rule(ruleset: libc::c_int, path: &CString, access: u64) {
    // SAFETY: `path` is NUL-terminated; `attr` lives across the call; `fd` is closed here.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let attr = PathBeneathAttr {
            allowed_access: access,
            parent_fd: fd,
        };
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset as libc::c_long,
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0 as libc::c_ulong,
        );
        libc::close(fd);
    }
}
