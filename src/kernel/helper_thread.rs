//! A second core for short jobs: one helper thread that stays awake for a moment after each
//! job, so that handing it half of a 40 µs product saves time instead of costing it.
//!
//! Decoding one token runs about seven row-times-weight products a layer, each reading a weight
//! of 1–3 MB in 40–130 µs. Reading is the whole cost, and one core reads at about half the
//! rate two do; but rayon's workers sleep between such products, and waking one took longer
//! than the product (a `512 × 512` row product: 41 µs on one core, 92 µs split through
//! `rayon::join` on a 2-core Xeon). The helper spins on an atomic for 300 µs (`STAY_AWAKE`)
//! after a job before it parks, so a decode step's back-to-back products find it awake
//! (`bench generate`, hidden 512 × 8 layers: 81 → 112 tokens/s).
//!
//! One caller at a time: a second thread that asks while the helper is taken runs both halves
//! itself.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long the helper spins for the next job before it parks.
const STAY_AWAKE: Duration = Duration::from_micros(300);

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const DONE: u8 = 2;
const PANICKED: u8 = 3;

/// The job: a type-erased `&mut dyn FnMut()` on the caller's stack, valid from `QUEUED` until
/// the helper sets `DONE` or `PANICKED` (the caller waits for that before returning).
type Job<'a> = &'a mut (dyn FnMut() + Send);

/// The hand-over between a caller and the helper thread.
struct Helper {
    caller: Mutex<()>,
    job: AtomicPtr<Job<'static>>,
    state: AtomicU8,
}

static HELPER: Helper = Helper {
    caller: Mutex::new(()),
    job: AtomicPtr::new(std::ptr::null_mut()),
    state: AtomicU8::new(IDLE),
};

/// The helper thread, started on first use; none on a single core.
static THREAD: OnceLock<Option<Thread>> = OnceLock::new();

fn helper_thread() -> Option<&'static Thread> {
    THREAD
        .get_or_init(|| {
            if thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
                return None;
            }
            let handle = thread::Builder::new()
                .name("burn-peft-helper".into())
                .spawn(|| serve(&HELPER))
                .expect("spawning the helper thread");
            Some(handle.thread().clone())
        })
        .as_ref()
}

/// The helper's loop: wait (spinning, then parked) for a job, run it, report.
fn serve(helper: &'static Helper) -> ! {
    let mut last = Instant::now();
    loop {
        let mut spins = 0u32;
        while helper.state.load(Ordering::Acquire) != QUEUED {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && last.elapsed() > STAY_AWAKE {
                // `unpark` before `park` leaves a token, so a job queued in between is seen.
                thread::park();
            } else {
                std::hint::spin_loop();
            }
        }
        let job = helper.job.load(Ordering::Acquire);
        // SAFETY: the caller keeps the job alive and borrowed until it sees DONE or PANICKED.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() }));
        let state = if outcome.is_ok() { DONE } else { PANICKED };
        helper.state.store(state, Ordering::Release);
        last = Instant::now();
    }
}

/// Runs `here` on this thread and `there` on the helper (both, here, when there is no helper or
/// another thread holds it), and returns once both are done. A panic in either is resumed here.
pub fn join(here: impl FnOnce(), there: impl FnOnce() + Send) {
    let Some(thread) = helper_thread() else {
        here();
        there();
        return;
    };
    let helper = &HELPER;
    // A caller that panicked left the lock poisoned; the helper's state is still sound.
    let _taken = match helper.caller.try_lock() {
        Ok(taken) => taken,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            here();
            there();
            return;
        }
    };
    let mut there = Some(there);
    let mut call = move || {
        if let Some(there) = there.take() {
            there()
        }
    };
    let mut job: Job<'_> = &mut call;
    // The helper may only see the job while this frame is alive: `Wait` blocks until it is done,
    // on every way out of this function (a panic in `here` included).
    struct Wait(&'static Helper);
    impl Drop for Wait {
        fn drop(&mut self) {
            while !matches!(self.0.state.load(Ordering::Acquire), DONE | PANICKED) {
                std::hint::spin_loop();
            }
        }
    }
    let job_ptr = (&mut job as *mut Job<'_>).cast::<Job<'static>>();
    helper.job.store(job_ptr, Ordering::Release);
    helper.state.store(QUEUED, Ordering::Release);
    thread.unpark();
    let wait = Wait(helper);
    here();
    drop(wait);
    let state = helper.state.swap(IDLE, Ordering::AcqRel);
    helper.job.store(std::ptr::null_mut(), Ordering::Release);
    if state == PANICKED {
        resume_unwind(Box::new("a job on the helper thread panicked"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Both halves run, each once, over many back-to-back calls and from several threads at
    /// once (a caller that finds the helper taken runs both itself).
    #[test]
    fn both_halves_run_once_from_any_number_of_callers() {
        let count = AtomicUsize::new(0);
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..2000 {
                        let (mut a, mut b) = (0, 0);
                        join(|| a += 1, || b += 1);
                        assert_eq!((a, b), (1, 1));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 8000);
    }

    /// A panic on the helper reaches the caller, and the helper serves the next call.
    #[test]
    fn a_panic_on_the_helper_reaches_the_caller() {
        let caught = catch_unwind(|| join(|| {}, || panic!("boom")));
        assert!(caught.is_err());
        let mut ran = false;
        join(|| {}, || ran = true);
        assert!(ran);
    }
}
