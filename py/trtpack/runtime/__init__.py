"""Runtime side of trtpack's two ops: who defines them (registration: libtorchtrt_runtime.so or Python), fake
kernels for tracing, and the Python TensorRT executor for CUDA."""
from trtpack.runtime import registration

registration.register()

from trtpack.runtime import fake  # noqa: E402,F401  (registers the fake kernels)
from trtpack.runtime.executor import Executor, register_cuda_kernels  # noqa: E402

register_cuda_kernels()

__all__ = ["Executor", "register_cuda_kernels", "registration"]
