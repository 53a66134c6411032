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


def make(name, *, parse_errors=(), inputs=("x",), outputs=("out0",), default_targets=("SM80", "SM86")):
    calls = []
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
        num_inputs, num_outputs = len(inputs), len(outputs)

        def get_input(self, i):
            return Tensor(inputs[i])

        def get_output(self, i):
            return Tensor(outputs[i])

    class Profile:
        def set_shape(self, name, low, opt, high):
            calls.append(("set_shape", name, low, opt, high))

    class Config:
        builder_optimization_level = 3
        num_compute_capabilities = 0
        hardware_compatibility_level = None

        def set_compute_capability(self, capability, index):
            calls.append(("set_compute_capability", capability.name, index))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

    class Builder:
        def __init__(self, logger):
            pass

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
            chosen = [c[1] for c in calls if c[0] == "set_compute_capability"] or list(default_targets)
            return memoryview(rtx_plan(chosen))

    class Error:
        def __init__(self, text):
            self.text = text

        def __str__(self):
            return self.text

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = len(parse_errors)

        def parse(self, data):
            calls.append(("parse", len(data)))
            return not parse_errors

        def get_error(self, i):
            return Error(parse_errors[i])

    module.Logger, module.Builder, module.OnnxParser = Logger, Builder, OnnxParser
    return module
