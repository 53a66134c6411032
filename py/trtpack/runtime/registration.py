"""Who defines the `trtpack::` ops in this process: libtorchtrt_runtime.so when one was built for the running torch
(C++ schemas and kernels, which AOTInductor packages also need), else the same schemas and CPU kernels registered
from Python with torch.library, so `.ep` and `.engine` artifacts load and run under any supported torch.

The choice is made once, at `import trtpack`, from the torch version each candidate library records
(`trtpack-runtime-build-info`, written by runtime/ops.cpp). TRTPACK_OPS=native|python forces it;
TRTPACK_RUNTIME_LIBRARY names a library to try first.
"""
import mmap
import os
import shlex
import threading
import warnings
from typing import Dict, List, Optional

import torch

from trtpack import _native, locations, record
from trtpack.errors import IncompatibleEngineError, TrtpackError
from trtpack.runtime import shapes

SCHEMAS = ("execute_engine(Tensor[] inputs, Tensor plan, str meta) -> Tensor[]",
           "engine_usable(Tensor[] inputs, Tensor plan, str meta) -> Tensor")
LIBRARY = "libtorchtrt_runtime.so"
_MARKER = b"trtpack-runtime-build-info: torch "


def release(version: str) -> str:
    """'2.13.0+cpu' -> '2.13': the part of a torch version its C++ ABI follows."""
    return ".".join(version.split("+")[0].split(".")[:2])


def built_for(path: str) -> Optional[str]:
    """The torch version a libtorchtrt_runtime.so was compiled against, read from the file without loading it
    (loading runs its registrations, which a library built for another torch may crash in); None if unrecorded."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            at = data.find(_MARKER)
            if at < 0:
                return None
            end = data.find(b";", at, at + 80)
            return data[at + len(_MARKER):end].decode("ascii", "replace") if end > 0 else None
    except (OSError, ValueError):
        return None


def built_library_path(torch_version: str = torch.__version__) -> str:
    """Where tools/build_runtime.sh puts a libtorchtrt_runtime.so built for this torch (searched by import)."""
    return os.path.join(locations.cache_root(), "runtime", f"torch-{torch_version.split('+')[0]}", LIBRARY)


def build_command() -> str:
    """The command that builds libtorchtrt_runtime.so for the running torch, in a trtpack source checkout."""
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    return f"tools/build_runtime.sh --torch {shlex.quote(torch_dir)}"


def _candidates() -> List[str]:
    paths = [os.environ["TRTPACK_RUNTIME_LIBRARY"]] if os.environ.get("TRTPACK_RUNTIME_LIBRARY") else []
    paths.append(built_library_path())
    packaged = _native.find(LIBRARY, "runtime")
    if packaged:
        paths.append(packaged)
    return paths


class Registration:
    """What registered the ops: kind "native" (library, built_for) or "python" (reason says why not native)."""

    def __init__(self, kind: str, library: Optional[str] = None, built_for: Optional[str] = None, reason: str = ""):
        self.kind, self.library, self.built_for, self.reason = kind, library, built_for, reason

    def as_dict(self) -> Dict[str, Optional[str]]:
        return {"kind": self.kind, "library": self.library, "built_for_torch": self.built_for,
                "torch": torch.__version__, "reason": self.reason}


_active: Optional[Registration] = None
_library: Optional[torch.library.Library] = None


def register() -> Registration:
    """Defines the ops once per process (see the module docstring) and returns what did."""
    global _active
    if _active is not None:
        return _active
    mode = os.environ.get("TRTPACK_OPS", "auto")
    if mode not in ("auto", "native", "python"):
        raise TrtpackError(f"trtpack: TRTPACK_OPS={mode!r} is not one of auto, native, python; unset it or pick one.")
    if _already_defined():
        _active = Registration("native", None, None, "the trtpack:: ops were already defined in this process")
        return _active
    refused = []
    if mode != "python":
        for path in _candidates():
            if not os.path.isfile(path):
                if path == os.environ.get("TRTPACK_RUNTIME_LIBRARY"):
                    refused.append(f"{path} does not exist")
                continue
            unsafe = _writable_by_others(path)
            if unsafe:
                refused.append(f"{path} is not loaded: {unsafe}")
                continue
            version = built_for(path)
            if version is None or release(version) != release(torch.__version__):
                refused.append(f"{path} was built for torch {version or 'an unrecorded version'}")
                continue
            torch.ops.load_library(path)
            _active = Registration("native", path, version)
            break
    if _active is None:
        reason = "TRTPACK_OPS=python" if mode == "python" else (
            "; ".join(refused) if refused else f"no {LIBRARY} was found") + f", and this is torch {torch.__version__}"
        if mode == "native":
            raise TrtpackError(f"trtpack: TRTPACK_OPS=native but no {LIBRARY} built for torch {torch.__version__} "
                               f"is usable ({reason}). Build one with `{build_command()}`, or unset TRTPACK_OPS.")
        _define_in_python()
        _active = Registration("python", None, None, reason)
    asked = os.environ.get("TRTPACK_RUNTIME_LIBRARY")
    if asked and mode != "python" and _active.library != asked:
        warnings.warn(f"trtpack: TRTPACK_RUNTIME_LIBRARY is not used ({'; '.join(refused[:1])}, and this is torch "
                      f"{torch.__version__}); the trtpack:: ops come from "
                      f"{_active.library or 'Python (a .pt2 package needs a library built for this torch)'}.")
    return _active


def _writable_by_others(path: str) -> str:
    """Why a library someone else could have changed must not be loaded ('' when it is ours alone): it runs at import.
    The file and its folder must belong to this user (or root) and be writable by no one else."""
    for where in (path, os.path.dirname(os.path.abspath(path))):
        info = os.stat(where)
        if info.st_uid not in (os.getuid(), 0):
            return f"{where} belongs to another user"
        if info.st_mode & 0o022:
            return f"{where} is writable by its group or others (chmod go-w it)"
    return ""


def active() -> Registration:
    return _active if _active is not None else register()


def require_native(what: str) -> None:
    """Refuses, in one line with the command that fixes it, what only the C++ ops can run (AOTInductor packages)."""
    if active().kind != "native":
        raise IncompatibleEngineError(
            f"trtpack: {what} needs libtorchtrt_runtime.so built for torch {torch.__version__} (the trtpack:: ops "
            f"are registered from Python here: {active().reason}); build it with `{build_command()}`, or set "
            "TRTPACK_RUNTIME_LIBRARY to one built for this torch.")


def _already_defined() -> bool:
    try:
        torch.ops.trtpack.execute_engine.default  # noqa: B018
        return True
    except (AttributeError, RuntimeError):
        return False


# -- the ops from Python: the same schemas and CPU answers as runtime/kernels.cpp --------------------------------

_NO_EXECUTOR = ("no TensorRT executor is registered for CUDA in this process: `import trtpack` adds one (it needs "
                "the tensorrt_rtx or tensorrt package)")
_lock = threading.Lock()
_verdicts: Dict[tuple, dict] = {}


def _define_in_python() -> None:
    global _library
    _library = torch.library.Library("trtpack", "DEF")
    for schema in SCHEMAS:
        _library.define(schema)
    _library.impl("engine_usable", engine_usable, "CompositeExplicitAutograd")
    _library.impl("execute_engine", execute_engine_unavailable, "CompositeExplicitAutograd")


def _device(inputs, plan) -> torch.device:
    if not inputs:
        return plan.device
    for x in inputs:
        if x.device != inputs[0].device:
            raise ValueError(f"trtpack: engine inputs must all be on one device, got {inputs[0].device} and "
                             f"{x.device}; move them to the same CUDA device.")
    return inputs[0].device


def _record(meta: str) -> dict:
    """The decoded record, parsed once per meta string (shapes.engine_spec's cache, which the executor shares)."""
    try:
        return shapes.engine_spec(meta).meta
    except TrtpackError as e:
        raise ValueError(f"trtpack: the engine record's meta is invalid: {str(e).removeprefix('trtpack: ')}. "
                         "Rebuild the engine with trtpack, or check that the meta string was not altered.") from None


def _check_plan_tensor(plan: torch.Tensor, rec: dict, meta: str) -> None:
    if not (plan.dim() == 1 and plan.dtype == torch.uint8 and plan.device.type == "cpu" and plan.is_contiguous()):
        raise ValueError(f"trtpack: engine '{rec['name']}': plan must be a contiguous 1-D uint8 CPU tensor, got "
                         f"{plan.dtype} of shape {list(plan.shape)} on {plan.device}; pass the record's plan buffer "
                         "unchanged (plan.cpu().contiguous()).")
    try:
        record.check_plan(meta, plan)
    except TrtpackError as e:
        raise ValueError(f"trtpack: engine '{rec['name']}': the plan does not match its record: {e}") from None


def engine_usable(inputs: List[torch.Tensor], plan: torch.Tensor, meta: str) -> torch.Tensor:
    device = _device(inputs, plan)
    key = (plan.data_ptr(), plan.nbytes, meta, str(device))
    verdict = _verdicts.get(key)
    if verdict is None:
        rec = _record(meta)
        _check_plan_tensor(plan, rec, meta)
        verdict = ({"usable": False, "reason": _NO_EXECUTOR} if device.type == "cuda" else
                   record.compatibility(meta, {"cuda": False, "sm": None, "backends": {}}))
        with _lock:
            first = key not in _verdicts
            verdict = _verdicts.setdefault(key, verdict)
        if first and not verdict["usable"]:
            warnings.warn(f"trtpack: engine '{rec['name']}' cannot run on {device} (engine_usable is false, so a "
                          f"fallback program runs its PyTorch reference): {verdict['reason']}")
    return torch.tensor(verdict["usable"], dtype=torch.bool)  # on the CPU, like every engine_usable kernel


def execute_engine_unavailable(inputs: List[torch.Tensor], plan: torch.Tensor, meta: str) -> List[torch.Tensor]:
    device = _device(inputs, plan)
    rec = _record(meta)
    if device.type == "cuda":
        raise RuntimeError(f"trtpack: cannot run engine '{rec['name']}' on {device}: {_NO_EXECUTOR}.")
    backend = "TensorRT-RTX" if rec["backend"] == "tensorrt_rtx" else "TensorRT"
    raise RuntimeError(
        f"trtpack: TensorRT engine '{rec['name']}' (built for {','.join(rec['targets'])} with {backend} "
        f"{rec['backend_version']}) runs only on CUDA devices, and its inputs are on {device}. Run it with the module "
        "and inputs on an NVIDIA GPU of one of those compute capabilities with that version installed, or compile "
        "with trtpack.compile(..., fallback=True) so the program runs its PyTorch reference where the engine cannot "
        "run.")


__all__ = ["Registration", "active", "build_command", "built_for", "built_library_path", "register",
           "require_native"]
