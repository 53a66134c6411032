"""The lowered program: plan as a raw uint8 buffer, meta as a str literal, re-exportable, and what happens where an
engine cannot run (fallback=False raises IncompatibleEngineError; fallback=True runs the PyTorch ops)."""
import hashlib

import pytest
import torch

from tests.support import models
import trtpack
from trtpack import record
from trtpack.compiler import support

BATCH = torch.export.Dim("batch", min=1, max=32)


@pytest.fixture(scope="module")
def mlp():
    return models.eval_model(models.MLP)


@pytest.fixture(scope="module")
def engine_only(mlp):
    return trtpack.compile(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},), targets=["sm86"])


def test_without_fallback_the_graph_is_only_the_engine(engine_only):
    calls = [n for n in engine_only.graph.nodes if n.op == "call_function"]
    assert torch.ops.trtpack.execute_engine.default in [n.target for n in calls]
    assert torch.ops.higher_order.cond not in [n.target for n in calls]
    assert not [n for n in calls if support.is_compute_node(n) and n.target.namespace == "aten"]  # no model op left
    # The weights live in the plan: the module holds nothing but the plan buffer.
    assert list(engine_only.state_dict()) == ["trt_region_0.plan"]


def test_plan_is_raw_bytes_and_meta_a_canonical_str(engine_only):
    call = next(n for n in engine_only.graph.nodes if n.target == torch.ops.trtpack.execute_engine.default)
    plan = engine_only.get_buffer(call.args[1].target)
    meta = call.args[2]
    assert isinstance(meta, str) and record.encode_meta(record.decode_meta(meta)) == meta
    decoded = record.decode_meta(meta)
    assert decoded["plan_sha256"] == hashlib.sha256(plan.numpy().tobytes()).hexdigest()
    assert decoded["inputs"][0]["shape"] == ["s0", 16] and decoded["outputs"][0]["shape"] == ["s0", 4]
    assert decoded["symbols"] == {"s0": {"min": 1, "opt": 4, "max": 32}}


def test_running_without_fallback_where_engines_cannot_run_raises(engine_only):
    with pytest.raises(trtpack.IncompatibleEngineError, match="fallback=True"):
        engine_only(torch.randn(4, 16))


def test_compile_is_deterministic(mlp, engine_only):
    again = trtpack.compile(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},), targets=["sm86"], cache=False)
    meta = [n.args[2] for g in (engine_only, again) for n in g.graph.nodes
            if n.target == torch.ops.trtpack.execute_engine.default]
    assert meta[0] == meta[1]


def test_fallback_program_reexports_and_round_trips_through_save_load(mlp, tmp_path):
    module = trtpack.compile(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},), targets=["sm86"], fallback=True)
    program = torch.export.export(module, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},))
    torch.export.save(program, tmp_path / "mlp.pt2")
    loaded = torch.export.load(tmp_path / "mlp.pt2").module()
    x = torch.randn(7, 16)
    torch.testing.assert_close(loaded(x), mlp(x), atol=1e-5, rtol=1e-5)


def test_compile_accepts_an_exported_program_and_keeps_its_dynamic_dims(mlp):
    program = torch.export.export(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},))
    module = trtpack.compile(program, (torch.randn(4, 16),), targets=["sm86"], fallback=True)
    x = torch.randn(9, 16)
    torch.testing.assert_close(module(x), mlp(x), atol=1e-5, rtol=1e-5)


def test_kwarg_inputs_are_supported():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = models.eval_model(models.MLP)

        def forward(self, x, *, scale):
            return self.mlp(x) * scale

    model = Scaled().eval()
    x, scale = torch.randn(4, 16), torch.rand(4, 4)
    module = trtpack.compile(model, (x,), kwarg_inputs={"scale": scale}, targets=["sm86"], fallback=True)
    torch.testing.assert_close(module(x, scale=scale), model(x, scale=scale), atol=1e-5, rtol=1e-5)


def test_an_unbounded_dim_gets_the_documented_default_max(mlp):
    from trtpack.compiler.symbolic import DEFAULT_MAX_DIM

    module = trtpack.compile(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: torch.export.Dim("b")},),
                             targets=["sm86"], fallback=True)
    call = next(n for n in module._trtpack_program.graph.nodes if n.target == torch.ops.trtpack.engine_usable.default)
    assert record.decode_meta(call.args[2])["symbols"] == {"s0": {"min": 1, "opt": 4, "max": DEFAULT_MAX_DIM}}
    with pytest.raises(trtpack.IncompatibleEngineError, match=f"in \\[1, {DEFAULT_MAX_DIM}\\]"):
        module(torch.randn(DEFAULT_MAX_DIM + 1, 16))


def test_a_region_that_sees_only_a_derived_size_records_it_as_a_local_symbol():
    model = models.eval_model(models.TokensAfterCustomOp)
    dims = {0: torch.export.Dim("batch", min=1, max=8), 1: torch.export.Dim("seq", min=2, max=16)}
    module = trtpack.compile(model, (torch.randn(2, 5, 8),), dynamic_shapes=(dims,), targets=["sm86"],
                             fallback=True, min_block_size=3)
    metas = [record.decode_meta(n.args[2]) for n in module._trtpack_program.graph.nodes
             if n.target == torch.ops.trtpack.engine_usable.default]
    assert [m["outputs"][0]["shape"] for m in metas] == [["(s0*s1)", 1, 16], ["t0", 4]]
    assert metas[1]["inputs"][0]["shape"] == ["t0", 1, 16]
    assert metas[1]["symbols"] == {"t0": {"min": 2, "opt": 10, "max": 128}}
    for shape in [(1, 2, 8), (3, 7, 8), (8, 16, 8)]:
        x = torch.randn(shape)
        torch.testing.assert_close(module(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.fixture
def assembled(monkeypatch):
    """Records what trtpack.compiler.assemble.lowered_program returned: the program, or None (re-exported)."""
    from trtpack.compiler import assemble

    results, build = [], assemble.lowered_program
    monkeypatch.setattr(assemble, "lowered_program", lambda *a, **k: results.append(build(*a, **k)) or results[-1])
    return results


@pytest.mark.parametrize("fallback", [False, True])
def test_the_lowered_program_is_assembled_without_tracing_again(mlp, assembled, monkeypatch, tmp_path, fallback):
    from trtpack.compiler import reexport

    monkeypatch.setattr(reexport, "reexport", lambda *a, **k: pytest.fail("the lowered program was traced again"))
    module = trtpack.compile(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},), targets=["sm86"],
                             fallback=fallback, cache=False)
    program = assembled[-1]
    assert program is not None and module._trtpack_program is program
    targets = [n.target for n in program.graph.nodes]
    assert (torch.ops.higher_order.cond in targets) == fallback
    expected = ["trt_region_0.plan"] if not fallback else sorted(
        ["trt_region_0.plan"] + [f"trt_region_0.reference.{name}" for name, _ in mlp.named_parameters()])
    assert sorted(program.state_dict) == expected  # each weight once; without fallback only the plan
    if fallback:
        x = torch.randn(9, 16)
        torch.testing.assert_close(module(x), mlp(x), atol=1e-5, rtol=1e-5)
        trtpack.save(module, tmp_path / "mlp.ep")
        torch.testing.assert_close(trtpack.load(tmp_path / "mlp.ep")(x), mlp(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(trtpack.IncompatibleEngineError, match=r"in \[1, 32\]"):
        module(torch.randn(33, 16))  # the ranges the engine was built for, as a re-export gives them


def test_a_program_the_assembly_does_not_cover_is_traced_again(assembled):
    class TransposedOut(torch.nn.Module):  # the region's output is a view with swapped strides
        def __init__(self):
            super().__init__()
            self.first, self.second = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.second(torch.relu(self.first(x))).t()

    model = TransposedOut().eval()
    module = trtpack.compile(model, (torch.randn(4, 8),), dynamic_shapes=({0: BATCH},), targets=["sm86"],
                             fallback=True, min_block_size=1, cache=False)
    assert assembled == [None]
    x = torch.randn(6, 8)
    torch.testing.assert_close(module(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_failing_assembly_falls_back_to_tracing_again(mlp, monkeypatch, caplog):
    from trtpack.compiler import assemble

    def broken(self, *args):
        raise RuntimeError("an assembly bug")

    monkeypatch.setattr(assemble._Assembly, "build", broken)
    module = trtpack.compile(mlp, (torch.randn(4, 16),), dynamic_shapes=({0: BATCH},), targets=["sm86"],
                             fallback=True, cache=False)
    assert "re-exporting it instead" in caplog.text
    x = torch.randn(5, 16)
    torch.testing.assert_close(module(x), mlp(x), atol=1e-5, rtol=1e-5)
