"""Runtime side of trtpack's two ops: fake kernels for tracing, and the Python TensorRT executor for CUDA."""
from trtpack.runtime import fake  # noqa: F401  (registers the fake kernels)
from trtpack.runtime.executor import Executor, register_cuda_kernels

register_cuda_kernels()

__all__ = ["Executor", "register_cuda_kernels"]
