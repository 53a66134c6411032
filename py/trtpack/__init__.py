"""trtpack: compile PyTorch programs into TensorRT engines and ship them (.ep, .pt2, .engine)."""
from trtpack import _native
from trtpack.errors import FormatError, IncompatibleEngineError, TrtpackError, UnsupportedGraphError
from trtpack import record
import trtpack.runtime  # noqa: F401  (registers the ops' fake kernels and the Python CUDA executor)
from trtpack.compiler import compile, convert_exported_program_to_trt_engine  # noqa: A004
from trtpack.serialize import inspect, load, save

__version__ = _native.core.__version__

__all__ = [
    "FormatError",
    "IncompatibleEngineError",
    "TrtpackError",
    "UnsupportedGraphError",
    "__version__",
    "compile",
    "convert_exported_program_to_trt_engine",
    "inspect",
    "load",
    "record",
    "save",
]
