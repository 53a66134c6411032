"""A FAKE TensorRT Python module (the subset trtpack's builder uses) that records every call.

It stands in for `tensorrt` (full TensorRT, which cannot be installed here) and `tensorrt_rtx` in contract tests:
it checks that trtpack drives the builder API as documented, not that TensorRT builds anything. (The runtime side,
deserializing and executing, is faked by fake_tensorrt_runtime.py.)"""
import enum
import types

from trtpack import record
from tests.support import plans

TARGET_BITS = {name.upper(): bit for name, bit in record.TARGET_BITS.items()}  # ComputeCapability members


def rtx_plan(targets, body=b"plan body") -> bytes:
    """A fake TensorRT-RTX plan for `targets` given as ComputeCapability names ("SM86")."""
    return plans.rtx_plan_bytes(body, targets=[t.lower() for t in targets])


def make(name, *, parse_errors=(), inputs=("x",), outputs=("out0",), default_targets=("SM80", "SM86"),
         refuse_at_parse=(), refuse_at_build=()):
    """refuse_at_parse / refuse_at_build: ONNX op types (e.g. "Einsum") this fake refuses, as TensorRT does: the
    parser with an error naming the node's index, the builder with no plan and only a logged message. With either,
    the network's inputs and outputs are the parsed ONNX model's (so a whole compile can run against the fake)."""
    calls = []
    parsed = {"ops": [], "inputs": list(inputs), "outputs": list(outputs)}
    module = types.ModuleType(name)
    module.__version__ = "10.99.0" if name == "tensorrt" else "1.7.1.116"
    module.calls = calls
    module.ComputeCapability = enum.Enum("ComputeCapability", {k: v for k, v in TARGET_BITS.items()})
    module.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5})
    module.HardwareCompatibilityLevel = enum.Enum("HardwareCompatibilityLevel", {"NONE": 0, "AMPERE_PLUS": 1})

    class Logger:
        ERROR = "ERROR"

        def __init__(self, level):
            calls.append(("Logger", level))

    class Tensor:
        def __init__(self, name):
            self.name = name

    class Network:
        @property
        def num_inputs(self):
            return len(parsed["inputs"])

        @property
        def num_outputs(self):
            return len(parsed["outputs"])

        def get_input(self, i):
            return Tensor(parsed["inputs"][i])

        def get_output(self, i):
            return Tensor(parsed["outputs"][i])

    class Profile:
        def set_shape(self, name, low, opt, high):
            calls.append(("set_shape", name, low, opt, high))

    class Config:
        builder_optimization_level = 3
        num_compute_capabilities = 0
        hardware_compatibility_level = None

        def set_compute_capability(self, capability, index):
            calls.append(("set_compute_capability", capability.name, index))
            self.__dict__.setdefault("capabilities", []).append(capability.name)

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

    class ILogger:
        Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3})

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            self.config = Config()
            return self.config

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build", config.num_compute_capabilities, config.hardware_compatibility_level))
            refused = [op for op in parsed["ops"] if op in refuse_at_build]
            if refused:
                calls.append(("refused build", refused[0]))
                if hasattr(self.logger, "log"):
                    self.logger.log(ILogger.Severity.ERROR, f"fake builder: no tactic for {refused[0]}")
                return None
            chosen = config.__dict__.get("capabilities") or list(default_targets)  # this build's, not earlier ones
            return memoryview(rtx_plan(chosen))

    class Error:
        def __init__(self, text):
            self.text = text

        def __str__(self):
            return self.text

    class NodeError(Error):
        """Like TensorRT's IParserError: which ONNX node, its name and operator, and why."""

        def __init__(self, index, node):
            super().__init__(f"fake parser: {node.op_type} refused")
            self.index, self.name, self.op_type = index, node.name, node.op_type

        def node(self):
            return self.index

        def node_name(self):
            return self.name

        def node_operator(self):
            return self.op_type

        def desc(self):
            return f"fake parser: {self.op_type} refused"

    class OnnxParser:
        def __init__(self, network, logger):
            self.errors = [Error(text) for text in parse_errors]

        @property
        def num_errors(self):
            return len(self.errors)

        def parse(self, data):
            calls.append(("parse", len(data)))
            if refuse_at_parse or refuse_at_build:
                import onnx

                model = onnx.load_from_string(data)
                parsed.update(ops=[n.op_type for n in model.graph.node], inputs=[v.name for v in model.graph.input],
                              outputs=[v.name for v in model.graph.output])
                self.errors += [NodeError(i, n) for i, n in enumerate(model.graph.node) if n.op_type in refuse_at_parse]
            return not self.errors

        def get_error(self, i):
            return self.errors[i]

    module.Logger, module.Builder, module.OnnxParser, module.ILogger = Logger, Builder, OnnxParser, ILogger
    return module
