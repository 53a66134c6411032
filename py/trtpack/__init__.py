"""trtpack: compile PyTorch programs into TensorRT engines and ship them (.ep, .pt2, .engine).

One folder per stage of the data path, each with one entry point:
  compiler/   model -> export -> partition -> ONNX -> TensorRT plan -> lowered program      (trtpack.compile)
  record.py   the engine record (plan bytes + meta JSON), a face over the C++ core          (docs/FORMAT.md)
  runtime/    the ops' kernels: fake (tracing), Python TensorRT executor, the test stand-in
  artifacts/  save / load / inspect, one module per format; load returns a LoadedProgram   (trtpack.save, .load)
  cli/        the `trtpack` command over the above
  names.py, machine.py, locations.py, error_translation.py, errors.py: spellings, this machine, where caches live,
  error translation, error types
"""
from trtpack import _native
from trtpack.errors import (FormatError, IncompatibleEngineError, TrtpackError, UnsupportedGraphError,
                            UntrustedCodeError)
from trtpack import record
import trtpack.runtime  # noqa: F401  (registers the ops' fake kernels and the Python CUDA executor)
from trtpack.artifacts import LoadedProgram, inspect, load, save

__version__ = _native.core.__version__
_COMPILER_NAMES = ("compile", "convert_exported_program_to_trt_engine")


def __getattr__(name):
    # The compiler (sympy, onnx, onnxscript) is slow to import; loading and running artifacts never needs it.
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
