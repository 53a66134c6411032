"""export_program, the one model → ExportedProgram step: dynamic_shapes for a module, refused for a program, and
torch's failures as UnsupportedGraphError naming the stage (torch's error kept as __cause__). A guard torch cannot
prove over a dynamic dim's range becomes a run-time check, erased where it holds at every size."""
import pytest
import torch

from tests.support import models
from trtpack.compiler import symbolic
from trtpack.compiler.decomposition import decompose
from trtpack.compiler.export import export_program
from trtpack.errors import UnsupportedGraphError


class Double(torch.nn.Module):
    def forward(self, x):
        return x * 2


class DataDependent(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # control flow on a value: torch.export cannot trace it
            return x
        return -x


def test_a_module_is_exported_with_its_dynamic_shapes_and_decomposed():
    batch = torch.export.Dim("batch", min=1, max=8)
    program = export_program(Double(), (torch.randn(2, 3),), dynamic_shapes=({0: batch},))
    (x,) = [n for n in program.graph.nodes if n.op == "placeholder"]
    assert isinstance(x.meta["val"].shape[0], torch.SymInt)
    assert [r.upper for r in program.range_constraints.values()] == [8]
    raw = export_program(Double(), (torch.randn(2, 3),), decompose=False)
    assert isinstance(raw, torch.export.ExportedProgram)


def test_a_program_is_taken_as_it_is_and_dynamic_shapes_with_it_are_refused():
    program = torch.export.export(Double(), (torch.randn(2, 3),))
    assert export_program(program, decompose=False) is program
    with pytest.raises(UnsupportedGraphError, match="already fixed"):
        export_program(program, dynamic_shapes=({0: torch.export.Dim("b")},))


def test_torch_export_failures_name_the_stage_and_keep_the_cause():
    with pytest.raises(UnsupportedGraphError, match="torch.export could not export the model") as caught:
        export_program(DataDependent(), (torch.randn(3),))
    assert caught.value.__cause__ is not None and not isinstance(caught.value.__cause__, UnsupportedGraphError)


def test_decomposition_failures_name_the_stage_and_keep_the_cause(monkeypatch):
    program = torch.export.export(Double(), (torch.randn(2, 3),))
    cause = RuntimeError("decomposition broke")
    monkeypatch.setattr(torch.export.ExportedProgram, "run_decompositions",
                        lambda self, *a, **k: (_ for _ in ()).throw(cause))
    with pytest.raises(UnsupportedGraphError, match=r"decomposition \(stage: decompose\)") as caught:
        export_program(program)
    assert caught.value.__cause__ is cause


class CheckedBatch(torch.nn.Module):
    """A check on the batch that fails at batch 4 only: torch.export cannot prove it for batch in [1, 8]."""

    def forward(self, x):
        torch._check(x.shape[0] * x.shape[0] != 16)
        return x * 2


class FixedBatch(torch.nn.Module):
    def forward(self, x):
        return x.view(2, -1)  # specializes the batch to 2: no run-time check can stand in for that


def _checks(program):
    return [n for n in program.graph.nodes if n.target is torch.ops.aten._assert_scalar.default]


def test_a_guard_torch_cannot_prove_but_that_holds_for_every_batch_is_erased():
    batch = torch.export.Dim("batch", min=1, max=8)
    with pytest.raises(Exception, match="Constraints violated"):  # what torch.export alone says
        torch.export.export(models.DenseExperts(), (torch.randn(2, 8, 32),), dynamic_shapes=({0: batch},),
                            strict=False)
    model = models.eval_model(models.DenseExperts)
    program = export_program(model, (torch.randn(2, 8, 32),), dynamic_shapes=({0: batch},))
    assert _checks(program) == []
    assert not any(isinstance(n.meta.get("val"), torch.SymBool) for n in program.graph.nodes)  # its arithmetic too
    x = torch.randn(5, 8, 32)
    torch.testing.assert_close(program.module()(x), model(x))


def test_a_run_time_check_that_can_fail_in_the_range_stays_and_checks():
    batch = torch.export.Dim("batch", min=1, max=8)
    program = export_program(CheckedBatch(), (torch.randn(2, 3),), dynamic_shapes=({0: batch},))
    assert len(_checks(program)) == 1
    program.module()(torch.randn(3, 3))
    with pytest.raises(RuntimeError):
        program.module()(torch.randn(4, 3))


def test_a_range_too_large_to_check_keeps_the_check(monkeypatch):
    batch = torch.export.Dim("batch", min=1, max=8)
    program = export_program(models.DenseExperts(), (torch.randn(2, 8, 32),), dynamic_shapes=({0: batch},),
                             decompose=False)
    monkeypatch.setattr(symbolic, "MAX_CHECKED_SIZES", 7)  # 8 batch sizes to check: too many
    assert len(_checks(decompose(program))) == 1


def test_a_specialized_dim_still_raises_torchs_own_error():
    batch = torch.export.Dim("batch", min=1, max=8)
    with pytest.raises(UnsupportedGraphError, match="Suggested fixes"):
        export_program(FixedBatch(), (torch.randn(2, 8),), dynamic_shapes=({0: batch},))


def test_anything_else_is_refused_with_what_was_given():
    with pytest.raises(UnsupportedGraphError, match="not function"):
        export_program(lambda x: x, (torch.randn(1),))
