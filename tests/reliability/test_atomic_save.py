"""trtpack.save is all-or-nothing for every format: SIGKILL at random points, a full disk, and concurrent savers
never leave a damaged artifact or lose the previous one, and the next save removes what a killed one left.

Kills: a forked child saves in a loop and is SIGKILLed after a random delay spread over a few save durations, >= 50
times per format (TRTPACK_KILLS). The .pt2 loop packages one prepared program over and over: AOTInductor's compile
is replaced, in the child only, by copying a package built once (a compile takes a minute); everything trtpack does
around it (staging, manifest append, fsync, rename, sweep) runs as in a real save.
Disk full: a 4 MiB tmpfs in a private user+mount namespace (`unshare -rm`), filled before the save.
"""
import os
import random
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

import trtpack
from fuzz import programs
from tests.support import python_env
from tests.support.save_helpers import BODY, check_artifact, fake_package, leftovers
from trtpack.artifacts import atomic

KILLS = int(os.environ.get("TRTPACK_KILLS", "50"))


def save_forever(program, path, fmt):
    """Child body: saves until killed."""
    if fmt == "pt2":
        prepared = path + ".prepared"

        def compile_and_package(ep, package_path, inductor_configs=None):
            with open(prepared, "rb") as src, open(package_path, "wb") as dst:
                dst.write(src.read())
            return package_path

        torch._inductor.aoti_compile_and_package = compile_and_package
    while True:
        trtpack.save(program, path)


def fork_saver(program, path, fmt):
    pid = os.fork()
    if pid == 0:
        try:
            warnings.simplefilter("ignore")
            save_forever(program, path, fmt)
        finally:
            os._exit(1)
    return pid


def save_seconds(program, path):
    start = time.perf_counter()
    for _ in range(3):
        trtpack.save(program, path)
    return (time.perf_counter() - start) / 3


@pytest.fixture(scope="module")
def program():
    torch.set_num_threads(1)  # forked children run torch ops: no thread pool to inherit
    return programs.exported(BODY)


@pytest.mark.parametrize("fmt", ["ep", "engine", "pt2"])
def test_sigkill_at_random_points_never_loses_the_artifact(fmt, program, tmp_path, capsys):
    path = str(tmp_path / f"program.{fmt}")
    if fmt == "pt2":
        fake_package(path + ".prepared")
        torch_compile = torch._inductor.aoti_compile_and_package
        torch._inductor.aoti_compile_and_package = lambda ep, package_path, inductor_configs=None: (
            fake_package(package_path), package_path)[1]
        try:
            duration = save_seconds(program, path)
        finally:
            torch._inductor.aoti_compile_and_package = torch_compile
    else:
        duration = save_seconds(program, path)
    rng = random.Random(int(os.environ.get("TRTPACK_KILL_SEED", "7")))
    left_behind = 0
    for _ in range(KILLS):
        pid = fork_saver(program, path, fmt)
        time.sleep(rng.uniform(0, 3 * duration))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        check_artifact(path, fmt)
        left_behind += bool(leftovers(tmp_path))
    with capsys.disabled():
        print(f"\n{fmt}: {KILLS} kills (save takes {duration * 1e3:.0f} ms); {left_behind} left a staging folder "
              "or a commit behind; the artifact loaded after every one")
    assert left_behind > 0, "no kill landed mid-save; the test proved nothing"
    pid = fork_saver(program, path, fmt)  # the next save cleans up (it runs in a child: pt2's compile is replaced)
    time.sleep(20 * duration)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    if fmt != "pt2":
        trtpack.save(program, path)
        assert leftovers(tmp_path) == []
    check_artifact(path, fmt)


def test_killed_engine_commit_is_read_as_the_new_pair_and_finished_by_the_next_save(program, tmp_path):
    path = str(tmp_path / "program.engine")
    trtpack.save(program, path)
    other = programs.exported(BODY + 64)
    # A save killed between the plan's and the sidecar's move: new plan in place, new sidecar still committed.
    commit = atomic.commit_folder(path)
    os.mkdir(commit)
    engine = trtpack.load(str(tmp_path / "program.engine"))
    new = str(tmp_path / "new.engine")
    trtpack.save(other, new)
    os.replace(new, path)
    os.replace(new + ".json", os.path.join(commit, "sidecar"))
    loaded = trtpack.load(path)
    assert loaded.engines[0].plan.numel() == 64 + BODY + 64 != engine.engines[0].plan.numel()
    assert trtpack.inspect(path)["engines"][0]["plan_size"] == 64 + BODY + 64
    trtpack.save(program, path)
    assert leftovers(tmp_path) == [] and trtpack.load(path).engines[0].plan.numel() == 64 + BODY


def test_sweep_spares_a_live_savers_folder_from_another_pid_namespace_and_removes_a_dead_ones(program, tmp_path):
    path = str(tmp_path / "program.ep")
    trtpack.save(program, path)
    code = ("import sys, time; from trtpack.artifacts import atomic\n"
            "with atomic.staging(sys.argv[1]) as folder:\n    print(folder, flush=True)\n    time.sleep(120)\n")
    live = subprocess.Popen(["unshare", "-rpf", sys.executable, "-c", code, path], stdout=subprocess.PIPE, text=True,
                            env=python_env.env())
    try:
        live_folder = live.stdout.readline().strip()
        assert os.path.isdir(live_folder), "the saver in its own PID namespace did not start"
        dead = subprocess.run([sys.executable, "-c", code.replace("time.sleep(120)", "import os; os._exit(9)"),
                               path], capture_output=True, text=True, env=python_env.env())
        dead_folder = dead.stdout.strip()
        assert os.path.isdir(dead_folder)  # left as a SIGKILLed saver leaves it (its lock died with it)
        trtpack.save(program, path)
        assert os.path.isdir(live_folder), "the sweep deleted a live saver's folder"
        assert not os.path.exists(dead_folder), "the sweep kept a dead saver's folder"
    finally:
        live.kill()
        live.wait()


DISK_FULL = """
import os, sys, warnings
warnings.simplefilter("ignore")
import trtpack
from fuzz import programs
from tests.support import save_helpers as t
from trtpack.artifacts import atomic
folder, fmt, errno_only = sys.argv[1], sys.argv[2], sys.argv[3] == "errno_only"
if errno_only:  # as on a file system whose free space says nothing (a quota): only a write's errno tells
    atomic._disk_full = lambda folder: False
path = os.path.join(folder, "program." + fmt)
if fmt == "pt2":
    import torch
    torch._inductor.aoti_compile_and_package = lambda ep, package_path, inductor_configs=None: (
        t.fake_package(package_path, 64 << 10), package_path)[1]
trtpack.save(programs.exported(), path)
before = {f: t.sha(os.path.join(folder, f)) for f in os.listdir(folder)}
with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
    try:
        while True:
            f.write(bytes(64 << 10))
            f.flush()
    except OSError:
        pass
os.truncate(os.path.join(folder, "filler"), os.path.getsize(os.path.join(folder, "filler")) - (48 << 10))
if fmt == "pt2":
    torch._inductor.aoti_compile_and_package = lambda ep, package_path, inductor_configs=None: (
        t.fake_package(package_path, 2 << 20), package_path)[1]
try:
    trtpack.save(programs.exported(2 << 20), path)
    print("SAVED")
except trtpack.TrtpackError as e:
    print("ERROR", str(e).splitlines()[0])
after = {f: t.sha(os.path.join(folder, f)) for f in os.listdir(folder) if f != "filler"}
print("INTACT" if after == before else f"CHANGED {sorted(before)} {sorted(after)}")
t.check_artifact(path, fmt) if fmt == "pt2" else trtpack.load(path)
print("LOADS")
"""


@pytest.mark.parametrize("fmt,errno_only", [("ep", False), ("engine", False), ("pt2", False), ("engine", True)])
def test_full_disk_gives_a_clear_error_and_keeps_the_old_artifact(fmt, errno_only, tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    mode = "errno_only" if errno_only else "free_space"
    script = f"mount -t tmpfs -o size=4m tmpfs {mount} && exec {sys.executable} -c \"$0\" {mount} {fmt} {mode}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, DISK_FULL], capture_output=True, text=True,
                          timeout=300, env=python_env.env())
    if proc.returncode and "mount" in proc.stderr and "ERROR" not in proc.stdout:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {proc.stderr[-300:]}")
    out = proc.stdout
    assert "ERROR trtpack: no space left on device while saving" in out, out + proc.stderr[-3000:]
    assert "INTACT" in out and "LOADS" in out, out + proc.stderr[-3000:]
