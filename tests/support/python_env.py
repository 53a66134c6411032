"""Python subprocesses that see what the test sees: trtpack, `tests.support` and the test's other imports.

The one place a test's import path reaches a child process (under Bazel the runfiles root, from a checkout the
repository root; both hold `tests/support`).
"""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def env(**extra) -> dict:
    """os.environ with PYTHONPATH = this process's sys.path (+ the repository root), then `extra`."""
    paths = [os.path.abspath(p or os.curdir) for p in sys.path] + [REPO]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **extra}


def run_cli(*args, cwd=None):
    """`python -m trtpack.cli ARGS` in a fresh process: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "trtpack.cli", *args], capture_output=True, text=True, env=env(),
                          cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr
