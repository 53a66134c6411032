"""Builds small, valid engine records (plan tensor + meta string) for tests; the plan bytes are arbitrary."""
import hashlib

import torch

from trtpack import record


def make_record(inputs, outputs, symbols, *, backend="tensorrt_rtx", name="trt_region_0",
                plan_bytes=b"vtrt" + bytes(range(60)) + b"test plan body"):
    meta = {
        "format": "trtpack.engine", "format_version": list(record.FORMAT_VERSION),
        "name": name, "backend": backend, "backend_version": "1.7.1.116",
        "targets": ["sm80", "sm86", "sm89", "sm120", "sm121"],
        "trtpack_version": "0.1.0", "torch_version": torch.__version__,
        "plan_size": len(plan_bytes), "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(),
        "inputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, dt, s in inputs],
        "outputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, dt, s in outputs],
        "symbols": {k: {"min": lo, "opt": opt, "max": hi} for k, (lo, opt, hi) in symbols.items()},
        "build": {"onnx_opset": 18},
    }
    plan = torch.frombuffer(bytearray(plan_bytes), dtype=torch.uint8)
    return plan, record.encode_meta(meta)
