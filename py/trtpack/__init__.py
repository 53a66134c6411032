"""trtpack: compile PyTorch programs into TensorRT engines and ship them (.ep, .pt2, .engine)."""
from trtpack import _native
from trtpack.errors import (FormatError, IncompatibleEngineError, TrtpackError, UnsupportedGraphError,
                            UntrustedCodeError)
from trtpack import record
import trtpack.runtime  # noqa: F401  (registers the ops' fake kernels and the Python CUDA executor)
from trtpack.artifacts import LoadedProgram, inspect, load, save

__version__ = _native.core.__version__
_COMPILER_NAMES = ("compile", "convert_exported_program_to_trt_engine")


def __getattr__(name):
    # The compiler (sympy, onnx, tqdm) costs ~0.4 s to import; loading and running artifacts never needs it.
    if name in _COMPILER_NAMES:
        from trtpack import compiler
        return getattr(compiler, name)
    raise AttributeError(f"module 'trtpack' has no attribute {name!r}")

__all__ = [
    "FormatError",
    "IncompatibleEngineError",
    "LoadedProgram",
    "TrtpackError",
    "UnsupportedGraphError",
    "UntrustedCodeError",
    "__version__",
    "compile",
    "convert_exported_program_to_trt_engine",
    "inspect",
    "load",
    "record",
    "save",
]
