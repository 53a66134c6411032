"""Real TensorRT-RTX plans for five models, compiled with dynamic shapes, fallback=True and verify=True.

On this CPU machine engine_usable is false, so the program runs the reference branch: outputs must equal eager
within ATOL/RTOL. The plans themselves are checked through their headers and records (no GPU can run them)."""
import pytest
import torch

from tests.support import models
import trtpack
from trtpack import record
from trtpack.runtime import branches

ATOL, RTOL = 1e-5, 1e-5
TARGETS = ["sm86"]


def batch(max_size=8):
    return torch.export.Dim("batch", min=1, max=max_size)


SEQ = torch.export.Dim("seq", min=2, max=16)

# name: (model class, example input shape, dynamic axes, expected engines, sizes to run, one size out of range)
MODELS = {
    "small_cnn": (models.SmallCNN, (2, 3, 16, 16), {0: batch()}, 1, [(1, 3, 16, 16), (3, 3, 16, 16), (8, 3, 16, 16)],
                  (9, 3, 16, 16)),
    "tiny_resnet": (models.TinyResNet, (2, 3, 16, 16), {0: batch()}, 1,
                    [(1, 3, 16, 16), (5, 3, 16, 16), (8, 3, 16, 16)], (9, 3, 16, 16)),
    "encoder_block": (models.EncoderBlock, (2, 8, 32), {0: batch(), 1: SEQ}, 1, [(1, 2, 32), (3, 5, 32), (8, 16, 32)],
                      (2, 17, 32)),
    "mlp": (models.MLP, (4, 16), {0: batch(64)}, 1, [(1, 16), (17, 16), (64, 16)], (65, 16)),
    "split_by_custom_op": (models.SplitByCustomOp, (2, 3, 16, 16), {0: batch()}, 2,
                           [(1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16)], (9, 3, 16, 16)),
    "encoders_split_by_custom_op": (models.EncodersSplitByCustomOp, (2, 8, 32), {0: batch(), 1: SEQ}, 2,
                                    [(1, 2, 32), (3, 5, 32), (8, 16, 32)], (9, 4, 32)),
    # torch.export cannot prove a guard it makes over the batch: exported again with it as a run-time check, which
    # holds at every batch and is erased (export._export_module, symbolic.drop_size_checks_that_hold)
    "dense_experts": (models.DenseExperts, (2, 8, 32), {0: batch()}, 1, [(1, 8, 32), (5, 8, 32), (8, 8, 32)],
                      (9, 8, 32)),
}


@pytest.fixture(scope="module", params=list(MODELS))
def compiled(request):
    cls, shape, axes, engines, sizes, too_big = MODELS[request.param]
    model = models.eval_model(cls)
    torch.manual_seed(1)
    module = trtpack.compile(model, (torch.randn(shape),), dynamic_shapes=({**axes},), targets=TARGETS,
                             fallback=True, verify=True)
    return request.param, model, module, engines, sizes, too_big


def _engine_nodes(module, target):
    graphs = [m.graph for m in module.modules() if isinstance(m, torch.fx.GraphModule)]
    return [n for g in graphs for n in g.nodes if n.op == "call_function" and n.target == target]


def test_fallback_output_equals_eager_at_three_sizes(compiled):
    _, model, module, _, sizes, _ = compiled
    for shape in sizes:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(module(x), model(x), atol=ATOL, rtol=RTOL)


def test_size_outside_the_range_raises_a_clear_error(compiled):
    *_, too_big = compiled
    module = compiled[2]
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"outside the shapes .* compiled for.*Compile again"):
        module(torch.randn(too_big))


def test_graph_holds_the_expected_engines_each_behind_engine_usable(compiled):
    _, _, module, engines, _, _ = compiled
    saved = module._trtpack_program.module()  # the portable program trtpack.save writes
    assert len(_engine_nodes(saved, torch.ops.trtpack.execute_engine.default)) == engines
    assert len(_engine_nodes(saved, torch.ops.trtpack.engine_usable.default)) == engines
    assert len(_engine_nodes(saved, torch.ops.higher_order.cond)) == engines
    # The module compile returns decides each engine_usable once per device instead of per call.
    assert len([m for m in module.modules() if isinstance(m, branches.DecidedBranch)]) == engines
    assert not _engine_nodes(module, torch.ops.higher_order.cond)


def test_plans_report_the_requested_targets_and_match_their_records(compiled):
    _, _, compiled_module, engines, _, _ = compiled
    module = compiled_module._trtpack_program.module()
    calls = _engine_nodes(module, torch.ops.trtpack.engine_usable.default)
    assert len(calls) == engines
    for call in calls:
        plan = module.get_buffer(call.args[1].target)
        assert plan.dtype == torch.uint8 and plan.dim() == 1
        meta = record.decode_meta(call.args[2])
        assert record.plan_header(plan.numpy().tobytes())["targets"] == TARGETS
        assert meta["targets"] == TARGETS and meta["backend"] == "tensorrt_rtx"
        record.check_plan(meta, plan, verify_hash=True)


def test_verify_passed_and_summary_accounts_for_every_region(compiled):
    name, _, module, engines, _, _ = compiled
    summary = module.meta["trtpack_summary"]
    assert len(summary["regions"]) == engines
    for region in summary["regions"]:
        assert region["max_abs_error"] < 1e-3
        assert region["plan_size"] > 0 and region["targets"] == TARGETS
        assert set(region["seconds"]) == {"cache_key", "onnx", "verify", "build"}  # a cache miss: built here
    if name.endswith("split_by_custom_op"):
        (left,) = summary["left_in_pytorch"]
        assert left["op"] == "trtpack_test.channel_roll.default" and "custom op" in left["reason"]
        assert "models.py" in left["location"]
    else:
        assert summary["left_in_pytorch"] == [] and summary["ops_in_pytorch"] == 0
