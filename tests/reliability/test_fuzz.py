"""Runs every atheris harness in fuzz/ for a bounded time; any crash, hang or huge allocation fails the test.

Budget: $TRTPACK_FUZZ_SECONDS in total (default 60), split evenly; each harness starts from a copy of its seed corpus
in fuzz/corpus/, with libFuzzer's seed $TRTPACK_FUZZ_SEED (default 1). A failing input is kept in the test's output
folder and its bytes are printed. A self-test first
shows that the harness plumbing turns a finding into crash-* and a hang into timeout-* (docs/BAD_INPUTS.md,
"test_fuzz SIGALRM").
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
from tests.support import python_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(REPO, "fuzz")
TARGETS = ["meta", "plan_header", "engine", "archive", "zip", "expr"]
BUDGET = int(os.environ.get("TRTPACK_FUZZ_SECONDS", "60"))
# A fixed seed by default, so a CI run explores the same inputs first (a finding reproduces); fuzz/run_all.sh and
# TRTPACK_FUZZ_SEED=0 (libFuzzer: a random seed) explore further.
SEED = os.environ.get("TRTPACK_FUZZ_SEED", "1")


def run_fuzzer(script: str, corpus: str, work: str, *flags: str, timeout: int) -> subprocess.CompletedProcess:
    env = python_env.env(TMPDIR=work)
    args = [sys.executable, os.path.join(FUZZ, script), corpus, *flags, f"-artifact_prefix={work}/"]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def run_harness(target: str, seconds: int, work: str) -> subprocess.CompletedProcess:
    corpus = os.path.join(work, "corpus")
    shutil.copytree(os.path.join(FUZZ, "corpus", target), corpus)
    return run_fuzzer(f"fuzz_{target}.py", corpus, work, f"-max_total_time={seconds}", f"-seed={SEED}",
                      "-timeout=5", "-rss_limit_mb=4096", "-print_final_stats=1", timeout=seconds + 240)


def artifacts_in(folder) -> list:
    return [f for f in os.listdir(folder) if re.match(r"(crash|timeout|oom|leak)-", f)]


@pytest.mark.parametrize("seed,artifact", [("raise", "crash-"), ("hang", "timeout-")])
def test_finding_and_hang_always_leave_their_artifact(seed, artifact, tmp_path):
    """fuzz/selftest_reporting.py: its teardown outlasts the alarm period: a tick lands after Python reset SIGALRM."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(seed.encode())
    proc = run_fuzzer("selftest_reporting.py", str(corpus), str(tmp_path), "-timeout=2", "-runs=10", timeout=120)
    detail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    assert proc.returncode > 0, f"rc {proc.returncode} (negative: killed by that signal):\n{detail}"
    assert [f for f in artifacts_in(tmp_path) if f.startswith(artifact)], f"no {artifact}* artifact:\n{detail}"


@pytest.mark.parametrize("target", TARGETS)
def test_harness_runs_without_crash_hang_or_oom(target, tmp_path, capsys):
    seconds = max(2, BUDGET // len(TARGETS))
    proc = run_harness(target, seconds, str(tmp_path))
    log = proc.stdout + proc.stderr
    artifacts = artifacts_in(tmp_path)
    detail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0 and not artifacts, f"fuzz_{target} failed ({artifacts}):\n{detail}"
    runs = re.search(r"Done (\d+) runs in (\d+) second", log)
    assert runs and int(runs.group(1)) > 0, f"fuzz_{target} ran no inputs:\n{detail}"
    with capsys.disabled():  # into the test log: the CI's fuzz report
        print(f"\nfuzz_{target}: {runs.group(1)} executions in {runs.group(2)} s, 0 crashes, 0 hangs")
