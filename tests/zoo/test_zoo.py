"""The zoo end to end: each model compiles with a dynamic batch (with and without fallback), saves to .ep (and
.pt2 / .engine in the large run), and each artifact loads in a fresh process that never imports the model's library.
A fallback artifact runs its PyTorch reference here and must match eager; a no-fallback artifact must refuse to run
with IncompatibleEngineError (no engine can run on a CPU machine) rather than crash.

ZOO_ALL=1 runs every model and every format (the `large` target test_zoo_all); otherwise the CI-sized subset, .ep only.
"""
import os

import pytest

from tests.support import zoo_harness
from tests.support.zoo_models import ZOO

ALL = os.environ.get("ZOO_ALL") == "1"
ENTRIES = [e for e in ZOO if ALL or e.ci]
FORMATS = zoo_harness.FORMATS if ALL else (".ep",)


@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "no_fallback"])
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_model_round_trips_without_its_library(entry, fallback, tmp_path):
    report = zoo_harness.compile_model(entry, fallback=fallback, formats=FORMATS, folder=str(tmp_path))
    summary = report["summary"]
    assert summary["regions"], f"{entry.name}: no engine at all; left in PyTorch: {summary['left_in_pytorch'][:5]}"
    # issue 13's bar: a model whose whole-model ONNX export builds in TensorRT-RTX is one engine, nothing left out
    assert len(summary["regions"]) == 1 and summary["ops_in_pytorch"] == 0, \
        f"{entry.name}: {len(summary['regions'])} engines; left in PyTorch: {summary['left_in_pytorch'][:5]}"
    for region in summary["regions"]:
        assert region["max_abs_error"] is not None  # verify=True: onnxruntime matched PyTorch on each region
    for suffix, result in report["artifacts"].items():
        if not result["saved"]:
            assert suffix == ".engine" and "exactly one engine" in result["error"], result
            continue
        assert result["library_imported"] is False, f"{entry.name}{suffix}: loading imported {entry.library}"
        assert result["loaded"], result
        if fallback:
            assert result["ran"] and result["outputs_match"], result
            assert result["max_abs_error"] < 1e-3, result
        else:
            assert not result["ran"] and result["error"].startswith("IncompatibleEngineError"), result
