"""Engine records (plan + meta, format in docs/FORMAT.md) built by hand for tests: the one record builder.

    plan, meta = records.make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 8])],
                                     symbols={"s0": (1, 4, 64)})

A tensor is (name, dtype, shape); a symbol is name -> (min, opt, max). Any other key of the record
(`trtpack.record.FIELDS`) can be given by name; the rest get values that agree with the plan.
"""
import hashlib

import torch

import trtpack
from trtpack import record
from tests.support import plans

_FIELD_NAMES = {f.name for f in record.FIELDS}


def meta(plan_bytes: bytes, *, inputs, outputs, symbols, **fields) -> dict:
    """The record of `plan_bytes` as a dict (not yet validated: a test may break it on purpose)."""
    unknown = sorted(set(fields) - _FIELD_NAMES)
    if unknown:
        raise TypeError(f"records.meta: {unknown} are not record fields; the record has {sorted(_FIELD_NAMES)}")
    built = {
        "format": record.FORMAT_ID, "format_version": list(record.FORMAT_VERSION),
        "name": "trt_region_0", "backend": "tensorrt_rtx", "backend_version": plans.BACKEND_VERSION,
        "targets": list(plans.TARGETS), "trtpack_version": trtpack.__version__, "torch_version": torch.__version__,
        "plan_size": len(plan_bytes), "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(), "plan_xxh3": record.xxh3(plan_bytes),
        "inputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, dt, s in inputs],
        "outputs": [{"name": n, "dtype": dt, "shape": list(s)} for n, dt, s in outputs],
        "symbols": {k: {"min": lo, "opt": opt, "max": hi} for k, (lo, opt, hi) in symbols.items()},
        "build": {"onnx_opset": 18},
        **fields,
    }
    assert set(built) == _FIELD_NAMES, f"records.meta is out of date with record.FIELDS: {set(built) ^ _FIELD_NAMES}"
    return built


def make_record(inputs, outputs, symbols, *, plan_bytes: bytes = None, **fields):
    """(plan as a uint8 tensor, meta as trtpack's JSON str), checked against each other as trtpack checks them."""
    plan_bytes = plan_bytes or plans.rtx_plan_bytes(targets=fields.get("targets", plans.TARGETS))
    built = meta(plan_bytes, inputs=inputs, outputs=outputs, symbols=symbols, **fields)
    record.check_plan(built, plan_bytes, verify_hash=True)
    return plans.as_tensor(plan_bytes), record.encode_meta(built)
