"""export_program, the one model → ExportedProgram step: dynamic_shapes for a module, refused for a program, and
torch's failures as UnsupportedGraphError naming the stage (torch's error kept as __cause__)."""
import pytest
import torch

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


def test_anything_else_is_refused_with_what_was_given():
    with pytest.raises(UnsupportedGraphError, match="not function"):
        export_program(lambda x: x, (torch.randn(1),))
