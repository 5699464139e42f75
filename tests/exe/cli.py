"""Shared by the command-line tests in tests/exe: run a command, record named failures."""
import os
import subprocess

failures = []


def run(cmd, env=None):
    """Runs cmd with extra environment variables; output captured as text, 300 s at most."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=300)


def check(name, ok, detail=""):
    """Records `name` as failed unless ok; prints one line either way."""
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def expect(name, r, code, *needles):
    """The run `r` must exit with `code` and mention every needle on stdout or stderr."""
    msg = r.stderr + r.stdout
    ok = r.returncode == code and all(n in msg for n in needles)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {r.returncode}")
    if not ok:
        print(f"     expected exit {code} and {needles!r}\n     got: {msg.strip()[:600]}")
        failures.append(name)
