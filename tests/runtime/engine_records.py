"""Builds small, valid engine records (plan tensor + meta string) for tests.

The plan is a TensorRT-RTX 64-byte header (layout in docs/FORMAT.md) that agrees with the meta, then filler
bytes: enough for every check trtpack does without a GPU, never a runnable engine.
"""
import hashlib
import struct

import torch

from trtpack import record

TARGETS = ["sm80", "sm86", "sm89", "sm120", "sm121"]


def rtx_plan_bytes(body=b"not a real engine", version=(1, 7, 1, 116), targets=TARGETS):
    size = 64 + len(body)
    mask = sum(record.TARGET_BITS[t] for t in targets)
    header = b"vtrt" + bytes(12) + struct.pack("<Q", size) + bytes(version) + bytes(4) + struct.pack("<Q", mask)
    return header + bytes(64 - len(header)) + body


def make_record(inputs, outputs, symbols, *, backend="tensorrt_rtx", name="trt_region_0", plan_bytes=None):
    plan_bytes = plan_bytes or rtx_plan_bytes()
    meta = {
        "format": "trtpack.engine", "format_version": list(record.FORMAT_VERSION),
        "name": name, "backend": backend, "backend_version": "1.7.1.116", "targets": TARGETS,
        "trtpack_version": "0.1.0", "torch_version": torch.__version__,
        "plan_size": len(plan_bytes), "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(),
        "inputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, dt, s in inputs],
        "outputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, dt, s in outputs],
        "symbols": {k: {"min": lo, "opt": opt, "max": hi} for k, (lo, opt, hi) in symbols.items()},
        "build": {"onnx_opset": 18},
    }
    record.check_plan(meta, plan_bytes, verify_hash=True)
    plan = torch.frombuffer(bytearray(plan_bytes), dtype=torch.uint8)
    return plan, record.encode_meta(meta)


class EngineWithFallback(torch.nn.Module):
    """x -> torch.cond(engine_usable, engine, x @ weight): the shape of a fallback program, for the op tests."""

    def __init__(self, plan, meta):
        super().__init__()
        self.register_buffer("plan", plan)
        self.meta = meta
        self.weight = torch.nn.Parameter(torch.randn(3, 8))

    def forward(self, x):
        usable = torch.ops.trtpack.engine_usable([x], self.plan, self.meta)
        return torch.cond(usable,
                          lambda x: torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0],
                          lambda x: x @ self.weight,
                          (x,))
