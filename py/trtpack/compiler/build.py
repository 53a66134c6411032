"""Stage 4: ONNX bytes → TensorRT plan (OnnxParser, one optimization profile, targets) → engine record meta.

Inputs and outputs are recorded from the FX graph, not from the engine: reading an engine needs a GPU."""
import hashlib
from dataclasses import dataclass

import torch

from trtpack.compiler.backends import Backend
from trtpack.errors import UnsupportedGraphError


@dataclass
class Refusal:
    """One node TensorRT refused: its index in the ONNX graph (None when TensorRT named none) and why."""
    index: object
    onnx_name: str
    operator: str
    reason: str


class RefusedByTensorRT(UnsupportedGraphError):
    """TensorRT's parser (stage "parse") or builder (stage "build") refused the region. `refusals` names the ONNX
    nodes where TensorRT said which; the compiler maps them to FX nodes (`fx_nodes`) or bisects to find them."""

    def __init__(self, message: str, stage: str, refusals: list):
        super().__init__(message)
        self.stage, self.refusals, self.fx_nodes = stage, refusals, []


def _refusal(error) -> Refusal:
    """A parser error as a Refusal; TensorRT's IParserError has node() (-1: none), node_name(), node_operator(),
    desc()."""
    def ask(method, default):
        try:
            return getattr(error, method)()
        except Exception:  # noqa: BLE001  (an older or faked parser error: its text is still the reason)
            return default

    index = ask("node", -1)
    reason = str(ask("desc", "") or error).strip().splitlines()
    return Refusal(index if isinstance(index, int) and index >= 0 else None, str(ask("node_name", "")),
                   str(ask("node_operator", "")), reason[0] if reason else "no reason given")


def _capturing_logger(trt):
    """A TensorRT logger that keeps the error messages (a refused build says why only through its logger)."""
    base = getattr(trt, "ILogger", None)
    if base is None:
        return trt.Logger(trt.Logger.ERROR), []
    messages = []

    class Capture(base):
        def __init__(self):
            base.__init__(self)

        def log(self, severity, message):
            if severity <= trt.ILogger.Severity.ERROR:
                messages.append(str(message))

    return Capture(), messages


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
    logger, logged = _capturing_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(backend.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        refusals = [_refusal(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RefusedByTensorRT("trtpack: TensorRT's ONNX parser rejected the region:\n  " + "\n  ".join(
            f"{r.onnx_name or 'a node'} ({r.operator or '?'}): {r.reason}" for r in refusals), "parse", refusals)
    del logged[:]  # from here on, what the builder says
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
        reason = logged[-1].strip().splitlines()[0] if logged else "no reason logged"
        raise RefusedByTensorRT(f"trtpack: {backend.name} could not build a plan for the region: {reason}", "build",
                                [Refusal(None, "", "", reason)])
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
