"""Which TensorRT executor runs the CUDA kernels of `trtpack::execute_engine` and `engine_usable` (one schema, two
implementations):

- "cpp": libtorchtrt_runtime.so's own (runtime/trt_executor.cpp), in a library built with its executor (a
  `--config=tensorrt` build; tests/gpu/build_cpp_executor.sh builds a stand-in one). The default where it exists.
- "python": trtpack.runtime.executor's, registered from Python (any library, any supported torch).

The dispatcher holds one CUDA kernel per op, so the choice is the process's: `trtpack.load(path, executor=...)`
switches to the executor it names (the Python kernels override the library's, and removing them brings those back),
and a program loaded with one switches back to it when called after a load that chose the other. Programs loaded
by other means run with `TRTPACK_EXECUTOR` (read at `import trtpack`), else the default.
"""
import ctypes
import os
import threading
import warnings
from typing import Dict, Optional

import torch

from trtpack.errors import IncompatibleEngineError, TrtpackError
from trtpack.runtime import executor as python_executor, registration

EXECUTORS = ("cpp", "python")
ENV = "TRTPACK_EXECUTOR"

_lock = threading.Lock()
_native: Optional[bool] = None  # whether the library registered CUDA kernels (its C++ executor)
_active: Optional[str] = None


def _has_native_cuda_kernel() -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("trtpack::execute_engine", "CUDA")


def native_executor() -> Optional[str]:
    """What the library's C++ executor runs ("tensorrt 10.16.1.11", "tensorrt_rtx 1.7.1.116 stand-in"), or None."""
    if not _native:
        return None
    library = registration.active().library
    try:
        fn = ctypes.CDLL(library).trtpack_runtime_executor if library else None
    except (OSError, AttributeError):
        fn = None
    if fn is None:
        return "unknown"
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _cpp_refusal() -> Optional[str]:
    if not _native:
        reg = registration.active()
        where = (f"{reg.library} was built without it" if reg.library else
                 f"the trtpack:: ops are registered from Python here ({reg.reason})")
        return (f"executor='cpp' needs libtorchtrt_runtime.so built with its C++ TensorRT executor for torch "
                f"{torch.__version__} ({where}); build one with `bazel build --config=tensorrt "
                "//runtime:libtorchtrt_runtime.so` against a TensorRT SDK (runtime/README.md) and set "
                "TRTPACK_RUNTIME_LIBRARY to it, or use executor='python'")
    if not torch.cuda.is_available():
        return ("executor='cpp' runs engines on CUDA devices and this machine has none; load without executor= "
                "(programs compiled with fallback=True run their PyTorch reference on the CPU)")
    return None


def available() -> Dict[str, Optional[str]]:
    """executor -> None if it can run here, else why not."""
    init()
    return {"cpp": _cpp_refusal(), "python": None}


def default() -> str:
    """TRTPACK_EXECUTOR, else "cpp" where the library has it (it costs less per call: docs/BENCHMARKS.md), else
    "python"."""
    asked = os.environ.get(ENV, "")
    if asked:
        if asked not in EXECUTORS:
            raise TrtpackError(f"trtpack: {ENV}={asked!r} is not one of {', '.join(EXECUTORS)}; unset it or pick one.")
        return asked
    return "cpp" if _native else "python"


def init() -> None:
    """At import: records whether the library brought CUDA kernels, then activates the default executor."""
    global _native
    with _lock:
        if _native is not None:
            return
        _native = _has_native_cuda_kernel()
    name = default()
    if name == "cpp" and _cpp_refusal():
        warnings.warn(f"trtpack: {ENV}=cpp is not used: {_cpp_refusal()}. The Python executor runs engines.")
        name = "python"
    use(name)


def active() -> Optional[str]:
    return _active


def use(name: str) -> str:
    """Makes `name` run the CUDA kernels of both ops in this process; returns it. Cheap when it already does."""
    global _active
    if name == _active:
        return name
    if name not in EXECUTORS:
        raise TrtpackError(f"trtpack: executor={name!r} is not one of {', '.join(EXECUTORS)}.")
    init()
    with _lock:
        if name == _active:
            return name
        if name == "cpp":
            refusal = _cpp_refusal()
            if refusal:
                raise IncompatibleEngineError(f"trtpack: {refusal}.")
            python_executor.unregister_cuda_kernels()  # the library's kernels answer again
            python_executor.attach_cpp_test_double(native_executor())
        else:
            with warnings.catch_warnings():  # the dispatcher warns that the Python kernel overrides the library's
                warnings.filterwarnings("ignore", message=".*[Oo]verrid.*")
                python_executor.register_cuda_kernels(override=True)
        _active = name
    return name


__all__ = ["ENV", "EXECUTORS", "active", "available", "default", "init", "native_executor", "use"]
