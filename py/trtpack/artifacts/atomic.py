"""Atomic writes: a save either replaces the old file whole or leaves it as it was."""
import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it over `path` only if the block finishes.

    The temporary lives in a private folder next to the target (same filesystem, so the rename is atomic) and
    keeps the target's name (torch names an archive's root folder after the file). A crash at any point leaves
    the previous file intact; the temporary is removed on error.
    """
    path = os.path.abspath(path)
    _remove_stale_temporaries(path)
    folder = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp",
                              dir=os.path.dirname(path))
    tmp = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + (suffix or os.path.splitext(path)[1]))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stale_temporaries(path: str) -> None:
    """Removes temporaries that saves of `path` killed mid-write left behind (their process is gone)."""
    prefix = f".{os.path.basename(path)}."
    for entry in os.listdir(os.path.dirname(path)):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(os.path.dirname(path), entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
