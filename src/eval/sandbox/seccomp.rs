//! A seccomp-BPF filter that refuses new processes but not threads: `fork` and `vfork` fail with
//! `EPERM`, `clone` without `CLONE_THREAD` fails with `EPERM`, and `clone3` (whose flags sit in
//! memory a filter cannot read) fails with `ENOSYS`, on which glibc falls back to `clone` for
//! threads. It stops fork bombs where `RLIMIT_NPROC` does not (root). Only the native system-call
//! ABI is allowed (x86_64's x32 and foreign-architecture calls are refused).

use libc::sock_filter;

#[cfg(target_arch = "x86_64")]
mod arch {
    /// `AUDIT_ARCH_X86_64`.
    pub const AUDIT: u32 = 0xC000_003E;
    pub const CLONE: u32 = 56;
    pub const CLONE3: u32 = 435;
    /// `fork`, `vfork`.
    pub const ALWAYS_DENIED: &[u32] = &[57, 58];
    /// x32 system calls carry this bit under the same audit architecture.
    pub const X32_BIT: Option<u32> = Some(0x4000_0000);
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// `AUDIT_ARCH_AARCH64`.
    pub const AUDIT: u32 = 0xC000_00B7;
    pub const CLONE: u32 = 220;
    pub const CLONE3: u32 = 435;
    /// aarch64 has no `fork` / `vfork` system calls.
    pub const ALWAYS_DENIED: &[u32] = &[];
    pub const X32_BIT: Option<u32> = None;
}

// Offsets in `struct seccomp_data`: nr, arch, instruction pointer, args[6] (little-endian, so the
// low half of args[0], where clone's flags sit, is at 16).
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;
const CLONE_THREAD: u32 = 0x0001_0000;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const NOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A BPF program, built before the fork.
pub struct Filter {
    program: Vec<sock_filter>,
}

impl Filter {
    /// The fork-refusing filter for this architecture (None where it is not written).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub fn no_fork() -> Option<Self> {
        use arch::*;
        // Checks on the system-call number, each jumping to one of the tail's targets.
        enum Target {
            Deny,
            NoSys,
            CloneFlags,
        }
        let mut checks: Vec<(u16, u32, Target)> = Vec::new();
        if let Some(bit) = X32_BIT {
            checks.push((JGE_K, bit, Target::Deny));
        }
        checks.push((JEQ_K, CLONE3, Target::NoSys));
        checks.extend(ALWAYS_DENIED.iter().map(|&nr| (JEQ_K, nr, Target::Deny)));
        checks.push((JEQ_K, CLONE, Target::CloneFlags));

        let first_check = 4;
        let allow = first_check + checks.len();
        let load_flags = allow + 1;
        let test_flags = allow + 2;
        let deny = allow + 4;
        let nosys = allow + 5;
        // Relative jump from instruction `at` to `target` (BPF counts from the next one).
        let offset = |at: usize, target: usize| u8::try_from(target - at - 1).ok();

        let mut program = vec![
            stmt(LD_W_ABS, OFFSET_ARCH),
            jump(JEQ_K, AUDIT, 1, 0),
            stmt(RET_K, DENY),
            stmt(LD_W_ABS, OFFSET_NR),
        ];
        for (i, (code, k, target)) in checks.iter().enumerate() {
            let at = first_check + i;
            let to = match target {
                Target::Deny => deny,
                Target::NoSys => nosys,
                Target::CloneFlags => load_flags,
            };
            program.push(jump(*code, *k, offset(at, to)?, 0));
        }
        program.extend([
            stmt(RET_K, ALLOW),
            stmt(LD_W_ABS, OFFSET_ARG0_LOW),
            jump(JSET_K, CLONE_THREAD, 0, offset(test_flags, deny)?),
            stmt(RET_K, ALLOW),
            stmt(RET_K, DENY),
            stmt(RET_K, NOSYS),
        ]);
        Some(Self { program })
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub fn no_fork() -> Option<Self> {
        None
    }

    /// Installs the filter on the calling thread; true on success.
    ///
    /// # Safety
    /// Call in the forked child before `exec`, after `PR_SET_NO_NEW_PRIVS`.
    pub unsafe fn install(&self) -> bool {
        let program = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            // The kernel only reads the program.
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `program` points at `len` valid instructions for the duration of the call.
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &program as *const libc::sock_fprog,
            ) == 0
        }
    }
}
