"""Fake TensorRT-RTX plans: a valid 64-byte plan header (layout in docs/FORMAT.md) followed by filler bytes.

Enough for every check trtpack does without a GPU (magic, size, version, target mask); never a runnable engine.
"""
import struct

import torch

from trtpack import record

TARGETS = ["sm80", "sm86", "sm89", "sm120", "sm121"]  # TensorRT-RTX 1.7.1's default targets
VERSION = (1, 7, 1, 116)
BACKEND_VERSION = ".".join(map(str, VERSION))


def rtx_plan_bytes(body: bytes = b"not a real engine", *, targets=TARGETS, version=VERSION) -> bytes:
    """Header that agrees with a record for `targets` and `version`, then `body`."""
    size = 64 + len(body)
    mask = sum(record.TARGET_BITS[t] for t in targets)
    header = b"vtrt" + bytes(12) + struct.pack("<Q", size) + bytes(version) + bytes(4) + struct.pack("<Q", mask)
    return header + bytes(64 - len(header)) + body


def as_tensor(plan_bytes: bytes) -> torch.Tensor:
    """The plan as trtpack carries it: a 1-D uint8 CPU tensor (a copy, writable)."""
    return torch.frombuffer(bytearray(plan_bytes), dtype=torch.uint8)


def of_compiled(module) -> tuple:
    """([plan bytes], [meta]) of every engine call in what trtpack.compile returned (its saved program)."""
    program = module._trtpack_program
    calls = [n for n in program.graph.nodes if n.target is torch.ops.trtpack.execute_engine.default]
    plans = [bytes(program.state_dict[program.graph_signature.inputs_to_buffers[c.args[1].name]].numpy())
             for c in calls]
    return plans, [c.args[2] for c in calls]
