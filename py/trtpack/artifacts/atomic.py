"""All-or-nothing saves: the file (or the .engine + sidecar pair) at a path is the old one or the new one, whole.

A save writes into a private staging folder beside the target (`.NAME.<random>.tmp`, same filesystem), fsyncs,
then commits with rename. The staging folder carries an exclusive flock for as long as its saver lives; the
next save to the same place removes every staging folder whose lock it can take (its saver is gone, in whatever
process or PID namespace it ran: the kernel drops a dead process's flocks). A saver locks its folder while holding
a shared flock on the parent directory, and the sweep holds it exclusively, so a folder is never seen unlocked
between its creation and its lock. Locks are advisory and local: on NFS they depend on the server (docs/SECURITY.md).

Two files that must change together (an .engine and its sidecar) commit through one pointer: the staged folder
is renamed to `.NAME.commit` (atomic), and its files are then moved over the targets. A reader prefers each file
found in `.NAME.commit`, and the next save finishes a commit a killed save left, so readers always see a pair.
"""
import contextlib
import errno
import fcntl
import io
import os
import shutil
import tempfile

from trtpack.errors import TrtpackError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def _directory_lock(folder: str, mode: int):
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # an unreadable folder: no lock, so no sweep either (see staging())
        yield False
        return
    try:
        fcntl.flock(fd, mode)
        yield True
    finally:
        os.close(fd)  # releases the lock


def _sweep(folder: str, prefix: str) -> None:
    """Removes staging folders of dead savers of one target (those whose flock can be taken)."""
    for entry in os.listdir(folder):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        candidate = os.path.join(folder, entry)
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live saver holds it
        try:
            shutil.rmtree(candidate, ignore_errors=True)
        finally:
            os.close(fd)


@contextlib.contextmanager
def staging(path: str):
    """Yields a new private folder beside `path`, locked for this saver, after sweeping dead savers' folders and
    finishing a commit a killed save left. The folder is removed on exit."""
    path = os.path.abspath(path)
    parent, base = os.path.split(path)
    with _directory_lock(parent, fcntl.LOCK_EX) as locked:
        if locked:
            _sweep(parent, f".{base}.")
            finish_commit(path)
    with _directory_lock(parent, fcntl.LOCK_SH):
        folder = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
        lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def no_space_is_clear(path: str, folder: str):
    """Turns a write that failed because the disk is full (torch's writer reports it as 'unexpected pos ...') into
    a TrtpackError that says so; the target is untouched, the staging folder is removed by staging()."""
    try:
        yield
    except Exception as e:
        errno_ = getattr(e, "errno", None)
        if errno_ in NO_SPACE or (errno_ is None and _disk_full(folder)):
            raise TrtpackError(f"trtpack: no space left on device while saving {path!r} "
                               f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); the previous "
                               "file there is unchanged. Free some space and save again.") from e
        raise


class CheckedWriter(io.RawIOBase):
    """A binary file for torch's archive writer that never raises: torch's C++ writer retries the failed write from
    its destructor, and a second exception there aborts the process (std::terminate). The first OSError is kept in
    .error and later writes are dropped; close() raises it, once, after torch returns. A writable, seekable IOBase,
    so torch takes it as the buffer it expects (and does not warn about the file name)."""

    def __init__(self, path: str):
        super().__init__()
        self.file = open(path, "wb")
        self.error = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def write(self, data) -> int:
        if self.error is None:
            try:
                self.file.write(data)
            except OSError as e:
                self.error = e
        return len(data)

    def flush(self) -> None:
        if self.error is None and not self.file.closed:
            try:
                self.file.flush()
            except OSError as e:
                self.error = e

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        try:
            self.file.close()
        except OSError as e:
            self.error = self.error or e
        if self.error is not None:
            raise self.error


def _disk_full(folder: str) -> bool:
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < (1 << 20)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it over `path` only if the block finishes.

    The temporary keeps the target's stem (torch names an archive's root folder after the file). A crash at any
    point leaves the previous file intact; the next save to `path` removes what a killed one left.
    """
    path = os.path.abspath(path)
    with staging(path) as folder:
        tmp = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + (suffix or os.path.splitext(path)[1]))
        with no_space_is_clear(path, folder):
            yield tmp
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(os.path.dirname(path))


def commit_folder(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.commit")


def write_pair(path: str, write_files) -> None:
    """Writes `path` and `path + ".json"` together: write_files(plan_tmp, sidecar_tmp) fills both in a staging
    folder, which becomes the commit folder in one rename, then each file moves over its target."""
    path = os.path.abspath(path)
    with staging(path) as folder:
        plan, sidecar = os.path.join(folder, "plan"), os.path.join(folder, "sidecar")
        with no_space_is_clear(path, folder):
            write_files(plan, sidecar)
            _fsync(plan)
            _fsync(sidecar)
        parent = os.path.dirname(path)
        with _directory_lock(parent, fcntl.LOCK_EX):
            finish_commit(path)  # one a concurrent saver may have left half done
            os.rename(folder, commit_folder(path))  # the commit point
            _fsync(parent)
            finish_commit(path)


def finish_commit(path: str) -> None:
    """Moves a committed pair over its targets (plan first, then the sidecar) and removes the commit folder."""
    commit = commit_folder(path)
    for name, target in (("plan", path), ("sidecar", path + ".json")):
        try:
            os.replace(os.path.join(commit, name), target)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(commit)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    _fsync(os.path.dirname(os.path.abspath(path)))


def current_pair(path: str) -> tuple:
    """(plan path, sidecar path) of the newest committed .engine pair: a file still in the commit folder wins."""
    commit = commit_folder(path)
    plan, sidecar = os.path.join(commit, "plan"), os.path.join(commit, "sidecar")
    if os.path.exists(sidecar):
        return (plan if os.path.exists(plan) else path), sidecar
    return path, path + ".json"
