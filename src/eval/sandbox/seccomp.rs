//! The seccomp-BPF filter of a sandboxed program (native system-call ABI only; x86_64's x32 and
//! foreign-architecture calls are refused). It refuses, with `EPERM` unless noted:
//!
//! - new processes, not threads: `fork`, `vfork`, `clone` without `CLONE_THREAD` or with a
//!   namespace flag; `clone3` (whose flags sit in memory a filter cannot read) with `ENOSYS`, on
//!   which glibc falls back to `clone` for threads. Fork bombs stop here where `RLIMIT_NPROC`
//!   does not (root).
//! - signals to anyone but itself: `kill` only to its own pid or its own process group (0; not
//!   −pid, which for PID 1 of a namespace would be −1, everyone); `tgkill`, `rt_sigqueueinfo`,
//!   `rt_tgsigqueueinfo` only to its own pid; `tkill` and `pidfd_send_signal` never. Together
//!   with the PID namespace (where it has one) the harness cannot be signalled even on kernels
//!   without Landlock scopes.
//! - tracing and reading other processes: `ptrace`, `process_vm_readv/writev`, `kcmp`,
//!   `pidfd_open`, `pidfd_getfd`.
//! - leaving or rebuilding its confinement: `unshare`, `setns`, `mount` and the new mount API,
//!   `umount2`, `pivot_root`, `chroot` (a nested user namespace could otherwise mount an
//!   unbounded tmpfs), and kernel attack surface it has no use for: `bpf`, `perf_event_open`,
//!   `userfaultfd`, `keyctl`/`add_key`/`request_key`, `io_uring_*` (its operations bypass
//!   seccomp), `open_by_handle_at`.
//! - Unix-domain sockets (`socket(AF_UNIX, …)`): a network namespace does not isolate sockets
//!   reached by path, such as a container runtime's. `socketpair` stays allowed.

use libc::sock_filter;

#[cfg(target_arch = "x86_64")]
mod arch {
    /// `AUDIT_ARCH_X86_64`.
    pub const AUDIT: u32 = 0xC000_003E;
    /// x32 system calls carry this bit under the same audit architecture.
    pub const X32_BIT: Option<u32> = Some(0x4000_0000);
    /// `fork`, `vfork` (aarch64 has neither).
    pub const FORKS: &[libc::c_long] = &[libc::SYS_fork, libc::SYS_vfork];
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// `AUDIT_ARCH_AARCH64`.
    pub const AUDIT: u32 = 0xC000_00B7;
    pub const X32_BIT: Option<u32> = None;
    pub const FORKS: &[libc::c_long] = &[];
}

// Offsets in `struct seccomp_data`: nr, arch, instruction pointer, args[6]. The low half of
// args[0] (little-endian) is at 16; pids, clone flags and socket domains are all 32-bit there.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Namespace flags of `clone` (`CLONE_NEWTIME` shares bits with the exit signal there).
const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// System calls refused outright (see the module docs).
const DENIED: &[libc::c_long] = &[
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_tkill,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
];

/// Where a jump goes: a shared return, or one of the argument checks.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Next,
    Allow,
    Eperm,
    Enosys,
    Clone,
    Kill,
    OwnPidOnly,
    Socket,
}

enum Insn {
    Load(u32),
    Jump {
        code: u16,
        k: u32,
        yes: Target,
        no: Target,
    },
    Return(u32),
    Label(Target),
    /// `k` is filled in with the child's own pid before installing.
    JumpIfSelf {
        yes: Target,
        no: Target,
    },
}

/// A BPF program, built before the fork; the child fills in its pid and installs it.
pub struct Filter {
    program: Vec<sock_filter>,
    /// Instructions whose `k` is the child's pid.
    self_slots: Vec<usize>,
}

impl Filter {
    /// The filter for this architecture (None where it is not written).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub fn new() -> Option<Self> {
        use Insn::*;
        use Target::*;
        let jeq = |k: u32, yes: Target, no: Target| Jump {
            code: JEQ_K,
            k,
            yes,
            no,
        };
        let nr = |n: libc::c_long| u32::try_from(n).expect("system-call numbers are small");
        let mut insns = vec![
            Load(OFFSET_ARCH),
            jeq(arch::AUDIT, Next, Eperm),
            Load(OFFSET_NR),
        ];
        if let Some(bit) = arch::X32_BIT {
            insns.push(Jump {
                code: JGE_K,
                k: bit,
                yes: Eperm,
                no: Next,
            });
        }
        insns.push(jeq(nr(libc::SYS_clone3), Enosys, Next));
        insns.push(jeq(nr(libc::SYS_clone), Clone, Next));
        insns.push(jeq(nr(libc::SYS_kill), Kill, Next));
        for call in [
            libc::SYS_tgkill,
            libc::SYS_rt_sigqueueinfo,
            libc::SYS_rt_tgsigqueueinfo,
        ] {
            insns.push(jeq(nr(call), OwnPidOnly, Next));
        }
        insns.push(jeq(nr(libc::SYS_socket), Socket, Next));
        for &call in arch::FORKS.iter().chain(DENIED) {
            insns.push(jeq(nr(call), Eperm, Next));
        }
        insns.extend([
            Return(ALLOW),
            // clone: threads only, and no namespaces.
            Label(Clone),
            Load(OFFSET_ARG0_LOW),
            Jump {
                code: JSET_K,
                k: libc::CLONE_THREAD as u32,
                yes: Next,
                no: Eperm,
            },
            Jump {
                code: JSET_K,
                k: CLONE_NAMESPACES,
                yes: Eperm,
                no: Allow,
            },
            // kill: its own process group (0), or itself (below).
            Label(Kill),
            Load(OFFSET_ARG0_LOW),
            jeq(0, Allow, Next),
            // tgkill and the sigqueue calls: its own pid (kill falls through).
            Label(OwnPidOnly),
            Load(OFFSET_ARG0_LOW),
            JumpIfSelf {
                yes: Allow,
                no: Eperm,
            },
            Label(Socket),
            Load(OFFSET_ARG0_LOW),
            jeq(libc::AF_UNIX as u32, Eperm, Allow),
            Label(Allow),
            Return(ALLOW),
            Label(Eperm),
            Return(EPERM),
            Label(Enosys),
            Return(ENOSYS),
        ]);
        assemble(&insns)
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub fn new() -> Option<Self> {
        None
    }

    /// Fills in `pid` (the caller's own, as it sees it) and installs the filter on the calling
    /// thread; true on success.
    ///
    /// # Safety
    /// Call in the forked child before `exec`, after `PR_SET_NO_NEW_PRIVS`. Async-signal-safe:
    /// it writes into memory allocated before the fork and makes one system call.
    pub unsafe fn install(&mut self, pid: libc::pid_t) -> bool {
        for &at in &self.self_slots {
            self.program[at].k = pid as u32;
        }
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

/// Resolves labels into BPF's forward jump offsets (at most 255 instructions ahead).
fn assemble(insns: &[Insn]) -> Option<Filter> {
    // Positions: labels take no instruction.
    let mut position = Vec::with_capacity(insns.len());
    let mut labels: Vec<(Target, usize)> = Vec::new();
    let mut next = 0usize;
    for insn in insns {
        position.push(next);
        match insn {
            Insn::Label(target) => labels.push((*target, next)),
            _ => next += 1,
        }
    }
    let mut program = Vec::with_capacity(next);
    let mut self_slots = Vec::new();
    for (insn, &at) in insns.iter().zip(&position) {
        let offset = |target: Target| -> Option<u8> {
            if target == Target::Next {
                return Some(0);
            }
            let (_, to) = labels.iter().find(|(t, _)| *t == target)?;
            u8::try_from(to.checked_sub(at + 1)?).ok()
        };
        let (code, k, jt, jf) = match insn {
            Insn::Label(_) => continue,
            Insn::Load(offset) => (LD_W_ABS, *offset, 0, 0),
            Insn::Return(action) => (RET_K, *action, 0, 0),
            Insn::Jump { code, k, yes, no } => (*code, *k, offset(*yes)?, offset(*no)?),
            Insn::JumpIfSelf { yes, no } => {
                self_slots.push(program.len());
                (JEQ_K, 0, offset(*yes)?, offset(*no)?)
            }
        };
        program.push(sock_filter { code, jt, jf, k });
    }
    Some(Filter {
        program,
        self_slots,
    })
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    /// Runs the filter as the kernel would on (nr, arch, arg0).
    fn verdict(filter: &Filter, pid: i32, nr: libc::c_long, arg0: u32) -> u32 {
        let mut program = filter.program.clone();
        for &at in &filter.self_slots {
            program[at].k = pid as u32;
        }
        let data = |offset: u32| match offset {
            OFFSET_NR => nr as u32,
            OFFSET_ARCH => arch::AUDIT,
            OFFSET_ARG0_LOW => arg0,
            _ => panic!("unexpected load at {offset}"),
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &program[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = data(i.k),
                RET_K => return i.k,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match i.code {
                        JEQ_K => acc == i.k,
                        JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                other => panic!("unexpected opcode {other}"),
            }
        }
    }

    #[test]
    fn refuses_what_the_docs_say() {
        let f = Filter::new().unwrap();
        let pid = 4242;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u32;
        assert_eq!(verdict(&f, pid, libc::SYS_clone, thread), ALLOW);
        assert_eq!(
            verdict(&f, pid, libc::SYS_clone, libc::SIGCHLD as u32),
            EPERM
        );
        assert_eq!(
            verdict(
                &f,
                pid,
                libc::SYS_clone,
                thread | libc::CLONE_NEWUSER as u32
            ),
            EPERM
        );
        assert_eq!(verdict(&f, pid, libc::SYS_clone3, 0), ENOSYS);
        assert_eq!(verdict(&f, pid, libc::SYS_kill, pid as u32), ALLOW);
        assert_eq!(verdict(&f, pid, libc::SYS_kill, 0), ALLOW);
        assert_eq!(verdict(&f, pid, libc::SYS_kill, (-pid) as u32), EPERM);
        assert_eq!(verdict(&f, pid, libc::SYS_kill, (-1i32) as u32), EPERM);
        assert_eq!(verdict(&f, 1, libc::SYS_kill, (-1i32) as u32), EPERM);
        assert_eq!(verdict(&f, 1, libc::SYS_kill, 1), ALLOW);
        assert_eq!(verdict(&f, pid, libc::SYS_kill, 1), EPERM);
        assert_eq!(verdict(&f, pid, libc::SYS_tgkill, pid as u32), ALLOW);
        assert_eq!(verdict(&f, pid, libc::SYS_tgkill, 1), EPERM);
        assert_eq!(verdict(&f, pid, libc::SYS_tkill, pid as u32), EPERM);
        assert_eq!(
            verdict(&f, pid, libc::SYS_socket, libc::AF_UNIX as u32),
            EPERM
        );
        assert_eq!(
            verdict(&f, pid, libc::SYS_socket, libc::AF_INET as u32),
            ALLOW
        );
        for &call in DENIED.iter().chain(arch::FORKS) {
            assert_eq!(verdict(&f, pid, call, 0), EPERM, "system call {call}");
        }
        assert_eq!(verdict(&f, pid, libc::SYS_write, 1), ALLOW);
        assert_eq!(verdict(&f, pid, libc::SYS_execve, 0), ALLOW);
    }
}
