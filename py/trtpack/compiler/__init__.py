"""trtpack's compiler: PyTorch program → regions → ONNX → TensorRT plans → a lowered program.

The pipeline is pipeline.py (compile and the summary); the stages are listed in README.md beside this file.
"""
from trtpack.compiler.pipeline import build_single_engine, compile, convert_exported_program_to_trt_engine

__all__ = ["compile", "convert_exported_program_to_trt_engine", "build_single_engine"]
