"""The compile baseline: the same steps as trtpack.compile, run by hand with no trtpack code —
torch.export → dynamo ONNX export → TensorRT-RTX OnnxParser → build with the same profile and targets."""
import contextlib
import io
import logging

import torch

from bench import models


def hand_compile(model: torch.nn.Module, example_inputs: tuple, targets: list) -> bytes:
    program = torch.export.export(model, example_inputs, dynamic_shapes=models.dynamic_shapes(), strict=False)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_bytes = torch.onnx.export(program, (), dynamo=True, verbose=False, report=False) \
            .model_proto.SerializeToString()
    return build(onnx_bytes, example_inputs[0].shape, targets)


def build(onnx_bytes: bytes, example_shape, targets: list) -> bytes:
    import tensorrt_rtx as trt

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        raise RuntimeError("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    config.num_compute_capabilities = len(targets)
    for index, target in enumerate(targets):
        config.set_compute_capability(getattr(trt.ComputeCapability, target.upper()), index)
    profile = builder.create_optimization_profile()
    features = tuple(example_shape[1:])
    profile.set_shape(network.get_input(0).name, (1, *features), tuple(example_shape), (models.MAX_BATCH, *features))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT-RTX could not build the hand-run plan")
    return plan
