"""Opening artifact files for reading: regular files only, decided on the open descriptor (no FIFO, device or
folder is ever read, and no check-then-open race)."""
import os
import stat

from trtpack.errors import FormatError, TrtpackError


def open_regular(path: str, what: str = "artifact") -> tuple:
    """(fd, size) of `path` opened read-only; FormatError unless it is a regular file. Close the fd when done."""
    try:  # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise TrtpackError(f"trtpack: cannot read the {what} {path!r}: {e.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FormatError(f"trtpack: the {what} {path!r} is not a regular file; give the path of a saved artifact.")
    os.set_blocking(fd, True)
    return fd, info.st_size
