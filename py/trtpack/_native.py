"""Finds trtpack's two compiled pieces: libtrtpack_core.so (the record core, a C ABI loaded with ctypes; needed
always) and libtorchtrt_runtime.so (the `trtpack::` ops in C++, built for one torch; optional in Python, see
runtime/registration.py).

They sit next to this file in an installed wheel; in a Bazel runfiles tree or a source checkout (after
`./bazelw build //...`) they are found under core/ and runtime/ of the build output.
"""
import os
from typing import List, Optional

from trtpack import core_binding
from trtpack.errors import TrtpackError

_PKG = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_PKG))  # py/trtpack -> repository or runfiles root
_SEARCH = [_PKG, _REPO, os.path.join(_REPO, "bazel-bin")]
if os.environ.get("TRTPACK_LIB_DIR"):
    _SEARCH.insert(0, os.environ["TRTPACK_LIB_DIR"])


def candidates(name: str, subdir: str) -> List[str]:
    """Where `name` may be, in search order."""
    return [path for base in _SEARCH for path in (os.path.join(base, name), os.path.join(base, subdir, name))]


def find(name: str, subdir: str) -> Optional[str]:
    return next((path for path in candidates(name, subdir) if os.path.isfile(path)), None)


def _load_core() -> core_binding.Core:
    path = find("libtrtpack_core.so", "core")
    if path is None:
        raise TrtpackError(
            "trtpack: cannot find libtrtpack_core.so; looked in:\n  " + "\n  ".join(candidates("libtrtpack_core.so", "core")) +
            "\nFrom a source checkout run `./bazelw build //...` first (see README), or install the wheel "
            "(`./bazelw build //py:wheel`), or set TRTPACK_LIB_DIR to a folder holding it.")
    return core_binding.Core(path)


core = _load_core()
