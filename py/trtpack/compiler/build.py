"""Stage 4: ONNX bytes → TensorRT plan (OnnxParser, one optimization profile, targets) → engine record meta.

Inputs and outputs are recorded from the FX graph, not from the engine: reading an engine needs a GPU."""
import hashlib
from dataclasses import dataclass

import torch

from trtpack.compiler.backends import Backend
from trtpack.errors import UnsupportedGraphError


@dataclass
class Plan:
    data: bytes
    targets: list
    backend_version: str
    optimization_level: int
    input_names: list
    output_names: list


def build_plan(onnx_bytes: bytes, profile: dict, backend: Backend, targets=None) -> Plan:
    """Parses `onnx_bytes` and builds a plan. `profile` maps each input name to (min, opt, max) shapes."""
    trt = backend.load()
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(backend.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        messages = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise UnsupportedGraphError("trtpack: TensorRT's ONNX parser rejected the region:\n  " + "\n  ".join(messages))
    config = builder.create_builder_config()
    expected = backend.set_targets(trt, config, targets)
    shapes = builder.create_optimization_profile()
    input_names = [network.get_input(i).name for i in range(network.num_inputs)]
    for name in input_names:
        if name not in profile:
            raise UnsupportedGraphError(f"trtpack: the parsed network has an input {name!r} the region does not have")
        shapes.set_shape(name, *profile[name])
    config.add_optimization_profile(shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UnsupportedGraphError(f"trtpack: {backend.name} could not build a plan for the region "
                                    "(see the TensorRT errors logged above)")
    data = bytes(serialized)
    return Plan(data=data, targets=backend.plan_targets(data, expected), backend_version=trt.__version__,
                optimization_level=int(config.builder_optimization_level), input_names=input_names,
                output_names=[network.get_output(i).name for i in range(network.num_outputs)])


def profile_shapes(input_dims, symbols) -> list:
    """(min, opt, max) per input from the program's symbol ranges; derived dims are evaluated at each end."""
    profile = []
    for dims in input_dims:
        ends = [tuple(symbols.evaluate(d, which) for d in dims) for which in ("min", "opt", "max")]
        low = tuple(min(a, b) for a, b in zip(ends[0], ends[2]))
        high = tuple(max(a, b) for a, b in zip(ends[0], ends[2]))
        profile.append((low, ends[1], high))
    return profile


def engine_meta(*, name, backend: Backend, plan: Plan, inputs, outputs, symbols: dict, build: dict) -> str:
    """The engine record's meta JSON (canonical, so the same build gives the same bytes)."""
    from trtpack import _native, record

    return record.encode_meta({
        "format": "trtpack.engine",
        "format_version": list(record.FORMAT_VERSION),
        "name": name,
        "backend": backend.name,
        "backend_version": plan.backend_version,
        "targets": plan.targets,
        "trtpack_version": _native.core.__version__,
        "torch_version": torch.__version__,
        "plan_size": len(plan.data),
        "plan_sha256": hashlib.sha256(plan.data).hexdigest(),
        "plan_xxh3": record.xxh3(plan.data),
        "inputs": inputs,
        "outputs": outputs,
        "symbols": symbols,
        "build": build,
    })
