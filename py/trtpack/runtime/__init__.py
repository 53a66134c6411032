"""Runtime side of trtpack's two ops: who defines them (registration: libtorchtrt_runtime.so or Python), fake
kernels for tracing, and the Python TensorRT executor for CUDA."""
from trtpack.runtime import registration

registration.register()

from trtpack.runtime import fake  # noqa: E402,F401  (registers the fake kernels)
from trtpack.runtime.executor import Executor, register_cuda_kernels  # noqa: E402
from trtpack.runtime import selection  # noqa: E402

selection.init()  # the library's C++ executor where it has one, else the Python one (TRTPACK_EXECUTOR decides)

__all__ = ["Executor", "register_cuda_kernels", "registration", "selection"]
