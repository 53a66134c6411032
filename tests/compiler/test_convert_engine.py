"""Whole programs as one plan, targets, and the onnxruntime check of the exact ONNX bytes."""
import pytest
import torch

from tests.support import models
import trtpack
from trtpack import record
from trtpack.compiler import build_single_engine, onnx_export
from trtpack.compiler.export import export_program


def _program(cls, shape):
    model = models.eval_model(cls)
    x = torch.randn(shape)
    return torch.export.export(model, (x,)), x


def test_whole_program_becomes_one_plan_for_the_requested_targets():
    program, x = _program(models.SmallCNN, (2, 3, 16, 16))
    plan = trtpack.convert_exported_program_to_trt_engine(program, (x,), targets=["sm80", "sm89"])
    assert isinstance(plan, bytes)
    assert record.plan_header(plan)["targets"] == ["sm80", "sm89"]


def test_default_targets_are_the_backends_portable_set_and_recorded():
    program, x = _program(models.MLP, (4, 16))
    engine = build_single_engine(program, (x,))
    header_targets = record.plan_header(engine.plan)["targets"]
    assert {"sm80", "sm86", "sm89", "sm120", "sm121"} <= set(header_targets)
    assert record.decode_meta(engine.meta)["targets"] == header_targets


def test_unsupported_nodes_are_listed_with_their_source_location():
    program, x = _program(models.SplitByCustomOp, (1, 3, 8, 8))
    with pytest.raises(trtpack.UnsupportedGraphError, match=r"(?s)channel_roll.*custom op.*models\.py\", line \d+"):
        trtpack.convert_exported_program_to_trt_engine(program, (x,), targets=["sm86"])


def test_verify_catches_an_onnx_model_that_computes_something_else():
    x = torch.randn(4, 16)
    program = export_program(models.eval_model(models.MLP), (x,))
    onnx_bytes = onnx_export.to_onnx(program).data
    other = models.eval_model(models.MLP)
    with torch.no_grad():
        other.net[0].weight.add_(0.5)
    with pytest.raises(onnx_export.VerificationError, match="differs from PyTorch"):
        onnx_export.verify(onnx_bytes, other, (x,), "mlp")
    result = onnx_export.verify(onnx_bytes, models.eval_model(models.MLP), (x,), "mlp")
    assert result.max_abs_error < 1e-5
