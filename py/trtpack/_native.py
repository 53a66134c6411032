"""Finds and loads trtpack's two compiled pieces: the core extension and libtorchtrt_runtime.so.

They sit next to this file in an installed wheel; in a Bazel runfiles tree or a source checkout
(after `./bazelw build //...`) they are found under core/ and runtime/ of the build output.
"""
import importlib.util
import os

import torch

from trtpack.errors import TrtpackError

_PKG = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_PKG))  # py/trtpack -> repository or runfiles root
_SEARCH = [_PKG, _REPO, os.path.join(_REPO, "bazel-bin")]
if os.environ.get("TRTPACK_LIB_DIR"):
    _SEARCH.insert(0, os.environ["TRTPACK_LIB_DIR"])


def _find(name: str, subdir: str) -> str:
    tried = []
    for base in _SEARCH:
        for path in (os.path.join(base, name), os.path.join(base, subdir, name)):
            if os.path.isfile(path):
                return path
            tried.append(path)
    raise TrtpackError(
        f"trtpack: cannot find {name}; looked in:\n  " + "\n  ".join(tried) +
        "\nFrom a source checkout run `./bazelw build //...` first (see README), or install the wheel "
        "(`./bazelw build //py:wheel`), or set TRTPACK_LIB_DIR to a folder holding it.")


def _load_core():
    path = _find("_trtpack_core.so", "core")
    spec = importlib.util.spec_from_file_location("trtpack._trtpack_core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runtime_library_path = _find("libtorchtrt_runtime.so", "runtime")
torch.ops.load_library(runtime_library_path)
core = _load_core()
