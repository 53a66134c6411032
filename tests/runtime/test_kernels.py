"""The CPU kernels of the trtpack:: ops (no TensorRT here): engine_usable answers false with the reason, once per
plan; execute_engine refuses CPU inputs with a message saying what to do; bad records are refused by name.

Run twice by Bazel: with libtorchtrt_runtime.so's C++ kernels (test_kernels), and with the same ops registered from
Python (test_kernels_python_ops, TRTPACK_OPS=python), which a torch without a matching library gets."""
import os
import warnings

import pytest
import torch

import trtpack  # noqa: F401  (defines the trtpack:: ops)
from trtpack.runtime import registration
from tests.support.records import make_record

EXPECTED_KIND = "python" if os.environ.get("TRTPACK_OPS") == "python" else "native"


def _record(name):
    return make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 8])],
                       symbols={"s0": (1, 4, 64)}, name=name)


def _usable_and_log(capfd, inputs, plan, meta):
    """engine_usable's answer and the lines it logged (C++: c10 logging to the process's stderr; Python: a warning)."""
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        usable = torch.ops.trtpack.engine_usable(inputs, plan, meta)
    lines = capfd.readouterr().err.splitlines() + [str(w.message) for w in caught]
    return usable, [line for line in lines if "trtpack: engine" in line]


def test_the_expected_registration_defines_the_ops():
    assert registration.active().kind == EXPECTED_KIND


def test_engine_usable_is_a_cpu_false_on_cpu_and_logs_the_reason_once_per_plan(capfd):
    plan, meta = _record("usable_once")
    x = torch.randn(2, 3)
    usable, logged = _usable_and_log(capfd, [x], plan, meta)
    assert usable.dtype == torch.bool and usable.dim() == 0 and usable.device.type == "cpu"
    assert usable.item() is False
    assert len(logged) == 1
    assert "'usable_once' cannot run on cpu" in logged[0] and "no CUDA device" in logged[0]

    again, logged_again = _usable_and_log(capfd, [torch.randn(5, 3)], plan, meta)
    assert again.item() is False and logged_again == []

    other_plan, other_meta = _record("another_engine")
    _, logged_other = _usable_and_log(capfd, [x], other_plan, other_meta)
    assert len(logged_other) == 1 and "'another_engine'" in logged_other[0]


def test_execute_engine_on_cpu_says_to_use_cuda_or_fallback():
    plan, meta = _record("cpu_run")
    with pytest.raises(RuntimeError, match=r"'cpu_run' \(built for sm.*TensorRT-RTX 1.7.1.116\) runs only on CUDA devices.*fallback=True"):
        torch.ops.trtpack.execute_engine([torch.randn(2, 3)], plan, meta)


def test_a_malformed_meta_is_refused_naming_the_field():
    plan, meta = _record("bad_meta")
    broken = meta.replace('"backend":"tensorrt_rtx"', '"backend":"onnxruntime"')
    with pytest.raises(ValueError, match="meta is invalid: backend"):
        torch.ops.trtpack.engine_usable([torch.randn(2, 3)], plan, broken)
    with pytest.raises(ValueError, match="meta is invalid: backend"):
        torch.ops.trtpack.execute_engine([torch.randn(2, 3)], plan, broken)


def test_a_plan_that_disagrees_with_its_record_is_refused():
    plan, meta = _record("short_plan")
    with pytest.raises(ValueError, match="'short_plan': the plan does not match its record: plan_size"):
        torch.ops.trtpack.engine_usable([torch.randn(2, 3)], plan[:-1].clone(), meta)
    with pytest.raises(ValueError, match="plan must be a contiguous 1-D uint8 CPU tensor"):
        torch.ops.trtpack.engine_usable([torch.randn(2, 3)], plan.to(torch.int8), meta)


def test_schemas_are_the_ones_the_cpp_test_expects():
    expected = open(os.path.join(os.path.dirname(__file__), "op_schemas.txt")).read().split("\n")
    seen = [str(torch.ops.trtpack.execute_engine.default._schema), str(torch.ops.trtpack.engine_usable.default._schema)]
    assert seen == [line for line in expected if line]
