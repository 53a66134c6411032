"""trtpack: compile PyTorch programs into TensorRT engines and ship them (.ep, .pt2, .engine)."""
from trtpack import _native
from trtpack.errors import FormatError, IncompatibleEngineError, TrtpackError, UnsupportedGraphError

__version__ = _native.core.__version__

__all__ = [
    "FormatError",
    "IncompatibleEngineError",
    "TrtpackError",
    "UnsupportedGraphError",
    "__version__",
]

import trtpack.runtime  # noqa: E402,F401  (registers the ops' fake kernels and the Python CUDA executor)
