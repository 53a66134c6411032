"""The real `tritonserver`, from the nvidia-pytriton wheel, set up to serve a trtpack repository with this Python.

What it takes (measured; DESIGN.md "Decisions of the third wave"):
- the binary and its libraries: the wheel's `pytriton/tritonserver/bin/tritonserver` and `nvidia_pytriton.libs`
  (on LD_LIBRARY_PATH). The wheel's Python package needs NumPy < 2, so it is not a dependency of trtpack: `install`
  puts the wheel, without its dependencies, in a folder of its own (only the binary is used);
- a Python-backend stub for the running CPython: the wheel ships one per version under `python_backend_stubs/X.Y/`,
  and the server finds none until one sits in `backends/python/`. `backend_directory` makes a private copy of the
  wheel's `backends/` with this version's stub (the installed package is never written to);
- the serving interpreter: the stub runs the `python3` found first on PATH, so this interpreter's folder goes first
  (and its libpython's folder on LD_LIBRARY_PATH), and trtpack must import there (PYTHONPATH, from a checkout).
NVML and DCGM warnings at start are expected on a machine without a GPU.
"""
import contextlib
import ctypes
import hashlib
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import trtpack
from trtpack import locations
from trtpack.errors import TrtpackError

PACKAGE = "nvidia-pytriton==0.7.0"


def home() -> str:
    """Where `install` puts the server: $TRTPACK_TRITON_HOME, else $TRTPACK_CACHE_DIR/tritonserver (default
    ~/.cache/trtpack/tritonserver)."""
    if os.environ.get("TRTPACK_TRITON_HOME"):
        return os.environ["TRTPACK_TRITON_HOME"]
    return os.path.join(locations.cache_root(), "tritonserver")


def _installed_in(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "pytriton", "tritonserver", "bin", "tritonserver"))


def locate(install: bool = False) -> str:
    """The folder holding `pytriton/tritonserver` and `nvidia_pytriton.libs`: an importable nvidia-pytriton, else
    the one `install` made under home(); with install=True, installs it there first if neither exists."""
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.submodule_search_locations:
        found = os.path.dirname(list(spec.submodule_search_locations)[0])
        if _installed_in(found):
            return found
    target = os.path.join(home(), PACKAGE.replace("==", "-"))
    if _installed_in(target):
        return target
    if not install:
        raise TrtpackError(f"trtpack: no tritonserver found (no importable pytriton, nothing in {target!r}). "
                           f"`trtpack tritonserver REPO` installs it there ({PACKAGE} from PyPI, without its Python "
                           "dependencies), or set TRTPACK_TRITON_HOME to a folder that has it.")
    return _install(target)


def _install(target: str) -> str:
    print(f"trtpack: installing the server ({PACKAGE}, its tritonserver binary only) into {target}", file=sys.stderr)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staged = tempfile.mkdtemp(prefix=".install.", dir=os.path.dirname(target))
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--no-deps", "--target", staged, PACKAGE], capture_output=True, text=True)
        if done.returncode != 0 or not _installed_in(staged):
            lines = [line for line in done.stderr.splitlines() if "is ignored: it is neither" not in line]
            raise TrtpackError(f"trtpack: could not install {PACKAGE} with pip (exit {done.returncode}): "
                               f"{' / '.join(lines[-3:]) or 'no tritonserver in the wheel'}. Install it yourself "
                               f"(pip install --no-deps --target {target} {PACKAGE}) and run again.")
        try:
            os.rename(staged, target)
        except OSError:
            if not _installed_in(target):  # another process won the race: use its copy
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target


def backend_directory(server: str) -> str:
    """A private copy of the server's backends/ whose python/ folder has the stub for this CPython, made once (per
    server install and Python version) under home()."""
    version = "%d.%d" % sys.version_info[:2]
    source = os.path.join(server, "pytriton", "tritonserver")
    stub = os.path.join(source, "python_backend_stubs", version, "triton_python_backend_stub")
    if not os.path.isfile(stub):
        shipped = sorted(os.listdir(os.path.join(source, "python_backend_stubs")))
        raise TrtpackError(f"trtpack: the server in {server!r} has no Python-backend stub for Python {version} "
                           f"(it has {', '.join(shipped)}); serve from one of those Python versions.")
    key = hashlib.sha256(os.path.realpath(server).encode()).hexdigest()[:12]
    target = os.path.join(home(), "backends", f"{key}-py{version}")
    if os.path.isfile(os.path.join(target, "python", "triton_python_backend_stub")):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staged = tempfile.mkdtemp(prefix=".backends.", dir=os.path.dirname(target))
    try:
        shutil.copytree(os.path.join(source, "backends"), os.path.join(staged, "b"))
        shutil.copy2(stub, os.path.join(staged, "b", "python", "triton_python_backend_stub"))
        try:
            os.rename(os.path.join(staged, "b"), target)
        except OSError:
            if not os.path.isfile(os.path.join(target, "python", "triton_python_backend_stub")):
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target


def command(repo: str, *, http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
            address: str = "0.0.0.0", extra=(), install: bool = False) -> tuple:
    """(argv, environment additions) that start tritonserver on `repo` with this Python serving the models."""
    server = locate(install=install)
    binary = os.path.join(server, "pytriton", "tritonserver", "bin", "tritonserver")
    argv = [binary, f"--model-repository={os.path.abspath(repo)}",
            f"--backend-directory={backend_directory(server)}",
            f"--http-address={address}", f"--http-port={http_port}",
            f"--grpc-address={address}", f"--grpc-port={grpc_port}",
            f"--metrics-address={address}", f"--metrics-port={metrics_port}", *extra]
    return argv, _environment(server)


def _environment(server: str) -> dict:
    libs = [os.path.join(server, "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
    env = {"PATH": _join(os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")),
           "LD_LIBRARY_PATH": _join(*libs, os.environ.get("LD_LIBRARY_PATH", ""))}
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(trtpack.__file__)))
    if package_root not in sysconfig.get_paths().values():  # trtpack from a checkout: the stub must find it too
        env["PYTHONPATH"] = _join(package_root, os.environ.get("PYTHONPATH", ""))
    return env


def _join(*parts) -> str:
    return os.pathsep.join(p for p in parts if p)


def shell_line(argv: list, env: dict) -> str:
    """The command as one line for a shell (or a container's command): `env K=V ... tritonserver ...`."""
    return " ".join(["env"] + [f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.quote(a) for a in argv])


@dataclass
class Running:
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    log: str                       # the server's stdout and stderr

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_text(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(repo: str, log: str, *, timeout: float = 120, extra=(), install: bool = True):
    """Starts tritonserver on `repo` on free loopback ports (metrics off), waits until it is ready, yields a
    Running; always stops it (SIGTERM to its process group, SIGKILL after 20 s). Raises TrtpackError with the log's
    last lines if the server exits or is not ready within `timeout` seconds."""
    ports = [free_port() for _ in range(2)]
    argv, env = command(repo, http_port=ports[0], grpc_port=ports[1], metrics_port=free_port(), address="127.0.0.1",
                        extra=["--allow-metrics=false", *extra], install=install)
    with open(log, "w") as out:
        process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    server = Running(process, ports[0], ports[1], log)
    try:
        _wait_ready(server, timeout)
        yield server
    finally:
        stop(process)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_ready(server: Running, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise TrtpackError(f"trtpack: tritonserver exited with {server.process.returncode} before it was "
                               f"ready; its log ends:\n{_tail(server.log_text())}")
        try:
            with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TrtpackError(f"trtpack: tritonserver was not ready after {timeout:.0f} s; its log ends:\n"
                       f"{_tail(server.log_text())}")


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the server's process group (the server and its backend stubs), SIGKILL if still there."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
