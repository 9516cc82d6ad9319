//! The sandbox contains what HumanEval completions might do: loop forever, fork-bomb, allocate
//! without bound, write outside their directory, reach the network.

use std::time::{Duration, Instant};

use burn_peft::eval::sandbox::{Outcome, Sandbox, SandboxLimits, landlock_abi};

use crate::common::scratch;

fn sandbox(timeout_s: u64) -> Sandbox {
    Sandbox::new(
        None,
        SandboxLimits {
            timeout: Duration::from_secs(timeout_s),
            ..SandboxLimits::default()
        },
    )
    .expect("python3 runs in the sandbox")
}

#[test]
fn reports_protections_and_runs_plain_programs() {
    let sb = sandbox(10);
    let run = sb
        .run_python("import sys\nprint(sum(range(10)))\nsys.exit(3)")
        .unwrap();
    assert_eq!(run.outcome, Outcome::Exited(3));
    assert_eq!(run.stdout.trim(), "45");
    let p = run.protections;
    eprintln!("sandbox protections on this machine: {p:?}");
    assert!(p.rlimits, "rlimits are set on every Unix");
    // The no-fork filter is written for these targets, and seccomp is near universal there.
    if cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        assert!(p.no_fork && p.no_new_privileges, "{p:?}");
    }
    // Threads still work under the no-fork filter.
    let threads = sb
        .run_python(
            "import threading\nout=[]\nt=threading.Thread(target=lambda: out.append(1))\n\
             t.start(); t.join()\nassert out == [1]",
        )
        .unwrap();
    assert!(threads.passed(), "{}", threads.stderr);
}

#[test]
fn infinite_loop_is_killed_by_the_timeout() {
    let sb = sandbox(2);
    let started = Instant::now();
    let run = sb.run_python("while True:\n    pass\n").unwrap();
    let elapsed = started.elapsed();
    assert_eq!(run.outcome, Outcome::TimedOut);
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

#[test]
fn fork_bomb_fails_without_harming_the_run() {
    let sb = sandbox(3);
    // Only where new processes are refused: an unconfined fork bomb would hurt the machine.
    let probe = sb.run_python("pass").unwrap();
    if !probe.protections.processes_confined() {
        eprintln!("neither seccomp nor RLIMIT_NPROC is in force here: fork bomb not run");
        return;
    }
    let started = Instant::now();
    let run = sb
        .run_python("import os\nwhile True:\n    os.fork()\n")
        .unwrap();
    assert!(!run.passed());
    // Refused at the first fork: the program fails at once instead of running into the timeout.
    assert_ne!(run.outcome, Outcome::TimedOut, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(run.stderr.contains("Error"), "{}", run.stderr);
    // The machine is still usable: a plain program runs right after.
    let after = sb.run_python("print('alive')").unwrap();
    assert!(after.passed() && after.stdout.trim() == "alive");
}

#[test]
fn ten_gigabyte_allocation_fails() {
    let sb = sandbox(10);
    let run = sb
        .run_python("x = bytearray(10 * 1024**3)\nprint('allocated')")
        .unwrap();
    assert!(!run.passed());
    assert!(!run.stdout.contains("allocated"));
    assert!(run.stderr.contains("MemoryError"), "{}", run.stderr);
}

#[test]
fn canary_outside_the_sandbox_is_untouched() {
    let dir = scratch("canary");
    let canary = dir.join("canary.txt");
    std::fs::write(&canary, "original").unwrap();
    let sb = sandbox(10);
    let program = format!(
        "import os\npath = {path:?}\nfor attempt in (lambda: open(path, 'w').write('pwned'),\n\
         \x20               lambda: os.remove(path),\n\
         \x20               lambda: os.rename(path, path + '.moved'),\n\
         \x20               lambda: open(os.path.join(os.path.dirname(path), 'new.txt'), 'w')):\n\
         \x20   try:\n        attempt()\n        print('escaped')\n    except OSError as e:\n\
         \x20       print('blocked', type(e).__name__)\n\
         open('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())\n",
        path = canary.display().to_string()
    );
    let run = sb.run_python(&program).unwrap();
    assert!(run.passed(), "{}", run.stderr);
    // Writing inside its own directory works.
    assert!(run.stdout.contains("fine"), "{}", run.stdout);
    // Where the kernel has Landlock, the confinement must be in force.
    assert_eq!(run.protections.filesystem_confined(), landlock_abi() > 0);
    if run.protections.filesystem_confined() {
        assert!(!run.stdout.contains("escaped"), "{}", run.stdout);
        assert_eq!(run.stdout.matches("blocked").count(), 4, "{}", run.stdout);
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "original");
        assert!(!dir.join("new.txt").exists());
        // Nor can it read the canary, the project, or secrets the caller's uid could open.
        let run = sb
            .run_python(&format!(
                "import os\nfor p in ({path:?}, {project:?}, '/etc/shadow', '/root'):\n\
                 \x20   try:\n        os.listdir(p) if os.path.isdir(p) else open(p).read()\n\
                 \x20       print('read', p)\n    except OSError:\n        print('blocked', p)\n",
                path = canary.display().to_string(),
                project = env!("CARGO_MANIFEST_DIR"),
            ))
            .unwrap();
        assert!(run.passed(), "{}", run.stderr);
        assert!(!run.stdout.contains("read "), "{}", run.stdout);
    } else {
        eprintln!("Landlock unavailable here: file-system confinement not enforced");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_network() {
    let sb = sandbox(10);
    let run = sb
        .run_python(
            "import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n\
             \x20   s.connect(('1.1.1.1', 80))\n    print('connected')\nexcept OSError as e:\n\
             \x20   print('blocked', e)\n",
        )
        .unwrap();
    assert!(run.passed(), "{}", run.stderr);
    if run.protections.network_confined() {
        assert!(run.stdout.contains("blocked"), "{}", run.stdout);
    }
}

#[test]
fn missing_interpreter_is_a_clear_error() {
    let err = Sandbox::new(
        Some(std::path::Path::new("/nonexistent/python3")),
        SandboxLimits::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/python3"), "{err}");
}
