//! Hostile HumanEval completions, run as the evaluation runs them (the task's program, in the
//! strict sandbox, two at a time): each scores 0, and the harness, the files and processes
//! around it survive. Only ever run in strict mode: `Sandbox::new` refuses unless every
//! protection is in force, so a hostile program cannot meet an unconfined machine.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Duration;

use burn_peft::eval::humaneval::{Problem, program, read_problems, run_programs};
use burn_peft::eval::progress::Progress;
use burn_peft::eval::sandbox::{Protection, Sandbox, SandboxLimits, SandboxPolicy};

use crate::common::{repo, scratch};

/// HumanEval/0 (`has_close_elements`): a body that returns the right answer would pass.
fn task() -> Problem {
    read_problems(&repo("datasets/humaneval/HumanEval.jsonl.gz"))
        .unwrap()
        .remove(0)
}

/// A process outside the sandbox that must outlive the run, with a secret in its environment.
struct Bystander(Child);

impl Bystander {
    fn start(secret: &str) -> Self {
        let child = Command::new("sleep")
            .arg("120")
            .env("BYSTANDER_SECRET", secret)
            .spawn()
            .expect("start `sleep`");
        Self(child)
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hostile_completions_score_zero_and_everything_survives() {
    let problem = task();
    // The infinite loop runs into this; everything else ends at once.
    let limits = SandboxLimits {
        timeout: Duration::from_secs(3),
        ..SandboxLimits::default()
    };
    let sandbox = Sandbox::new(None, limits, SandboxPolicy::Strict)
        .expect("strict sandbox: every protection in force");
    let probe = sandbox.run_python("pass").unwrap();
    assert!(probe.protections.has(Protection::PidNamespace));
    assert!(probe.protections.has(Protection::SyscallFilter));

    let dir = scratch("hostile");
    let canary = dir.join("canary.txt");
    std::fs::write(&canary, "original").unwrap();
    let secret = format!("secret-{}", std::process::id());
    let mut bystander = Bystander::start(&secret);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let harness = std::process::id();
    let sleeper = bystander.0.id();

    let canary_path = canary.display().to_string();
    let body_then = |code: &str| format!("    return False\n{code}\n");
    let in_body = |code: &str| {
        let indented: String = code.lines().map(|l| format!("    {l}\n")).collect();
        format!("{indented}    return False\n")
    };
    let fenced = |code: &str| format!("Here it is:\n```python\n{code}\n```\n");
    let cases: Vec<(&str, String)> = vec![
        // Exit with status 0 before the tests ran: after the function body, at top level of a
        // full-code answer, and inside the function (during check()).
        (
            "sys.exit(0) after the body",
            body_then("import sys\nsys.exit(0)"),
        ),
        (
            "os._exit(0) after the body",
            body_then("import os\nos._exit(0)"),
        ),
        (
            "raise SystemExit after the body",
            body_then("raise SystemExit"),
        ),
        (
            "sys.exit(0) at top level",
            fenced("import sys\nsys.exit(0)"),
        ),
        ("os._exit(0) at top level", fenced("import os\nos._exit(0)")),
        ("raise SystemExit at top level", fenced("raise SystemExit")),
        ("os._exit(0) in the body", in_body("import os\nos._exit(0)")),
        (
            "__main__ block exiting 0",
            body_then("if __name__ == '__main__':\n    raise SystemExit(0)"),
        ),
        // Signals to the harness and to everyone.
        (
            "kill the parent",
            in_body("import os\nos.kill(os.getppid(), 9)"),
        ),
        (
            "kill the harness",
            in_body(&format!("import os\nos.kill({harness}, 9)")),
        ),
        (
            "kill the bystander",
            in_body(&format!("import os\nos.kill({sleeper}, 9)")),
        ),
        ("kill everyone", in_body("import os\nos.kill(-1, 9)")),
        (
            "fork bomb",
            in_body("import os\nwhile True:\n    os.fork()"),
        ),
        ("infinite loop", in_body("while True:\n    pass")),
        ("20 GB allocation", in_body("x = bytearray(20 * 1024 ** 3)")),
        (
            "write outside",
            in_body(&format!(
                "open({canary_path:?}, 'w').write('pwned')\nimport os\nos.remove({canary_path:?})"
            )),
        ),
        (
            "fill the disk",
            in_body(
                "import os\ntry:\n    i = 0\n    while True:\n        \
                 with open(f'fill{i}', 'wb') as f:\n            f.write(b'0' * (8 << 20))\n        \
                 i += 1\nfinally:\n    \
                 print('wrote', sum(os.path.getsize(n) for n in os.listdir('.')))",
            ),
        ),
        (
            "connect to the host",
            in_body(&format!(
                "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"
            )),
        ),
        (
            "connect out",
            in_body("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)"),
        ),
        (
            "read another process's environment",
            in_body(&format!(
                "import os\nprint(open('/proc/{sleeper}/environ').read())\n\
                 for p in os.listdir('/proc'):\n    if p.isdigit():\n        \
                 print(open(f'/proc/{{p}}/environ').read())"
            )),
        ),
    ];
    let mut programs: Vec<String> = cases.iter().map(|(_, c)| program(&problem, c)).collect();
    // The control: the canonical solution passes in the same run.
    programs.push(program(&problem, &problem.canonical_solution));
    let runs = run_programs(
        &sandbox,
        &programs,
        2,
        &Progress::new("hostile", programs.len()),
    )
    .unwrap();

    for ((name, _), run) in cases.iter().zip(&runs) {
        eprintln!("{name}: {}", run.summary());
        assert!(!run.passed(), "{name} scored: {}", run.stdout);
        assert!(
            !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
            "{name} read the secret"
        );
    }
    let control = runs.last().unwrap();
    assert!(control.passed(), "canonical: {}", control.summary());
    // The timeout stopped the loop; the disk filled inside its tmpfs, not the host's.
    let loop_run = &runs[cases
        .iter()
        .position(|(n, _)| *n == "infinite loop")
        .unwrap()];
    assert!(
        loop_run.summary().contains("timed out"),
        "{}",
        loop_run.summary()
    );
    let fill = &runs[cases
        .iter()
        .position(|(n, _)| *n == "fill the disk")
        .unwrap()];
    assert!(
        fill.stderr.contains("No space left on device"),
        "{}",
        fill.stderr
    );
    let wrote: u64 = fill
        .stdout
        .trim()
        .strip_prefix("wrote ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("fill: {}", fill.stdout));
    assert!(
        wrote <= sandbox.limits().max_disk_bytes,
        "wrote {wrote} bytes"
    );

    // Everything around it survived: the files, the bystander, the listener saw no one.
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "original");
    assert!(bystander.alive(), "the bystander process was killed");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((mut stream, _)) => {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            panic!("a sandboxed program connected to the host: {text}");
        }
        Err(e) => panic!("listener: {e}"),
    }
    // And the sandbox still works.
    let after = sandbox.run_python("print('alive')").unwrap();
    assert!(after.passed() && after.stdout.trim() == "alive");
    std::fs::remove_dir_all(&dir).unwrap();
}
