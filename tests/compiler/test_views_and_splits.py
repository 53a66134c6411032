"""Layout-only views never split a region; short supported blocks join their neighbours; decomposition failures
and remaining splits are explained."""
import pytest
import torch
from torch import nn

from trtpack.compiler import decomposition, partition
from trtpack.compiler.export import export_program
from trtpack.errors import UnsupportedGraphError


class Views(nn.Module):
    def forward(self, x):
        a = torch.ops.aten.alias(x) * 2
        b = torch.as_strided(a, (2, 3, 64), (192, 64, 1)) + 1
        c = torch.ops.aten.copy(torch.empty_like(b), b) * 3
        return c - 1


def test_alias_plain_as_strided_and_copy_into_fresh_buffer_become_plain_ops():
    gm = export_program(Views(), (torch.randn(2, 3, 8, 8),)).module()
    parts = partition.partition(gm, 1)
    assert parts.regions == ["trt_region_0"] and not parts.left_out
    ops = parts.region_ops["trt_region_0"]
    assert not {"aten.alias.default", "aten.as_strided.default", "aten.copy.default"} & set(ops)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(gm(x), Views()(x))


class MaskedScores(nn.Module):
    """A constant mask (no inputs, 3 ops) feeding a larger block: it joins the block instead of staying in PyTorch."""

    def forward(self, x):
        n = x.shape[-1]
        mask = (torch.arange(n).unsqueeze(0) - torch.arange(n).unsqueeze(1)) > 0
        scores = (x * 2 + 1).tanh()
        return scores.masked_fill(mask, -1.0).softmax(-1) * 3


def test_a_short_block_between_engines_joins_them():
    gm = export_program(MaskedScores(), (torch.randn(2, 4, 4),)).module()
    parts = partition.partition(gm, 5)
    assert len(parts.regions) == 1, parts.left_out
    assert not parts.left_out
    x = torch.randn(2, 4, 4)
    torch.testing.assert_close(gm(x), MaskedScores()(x))


class SplitByPython(nn.Module):
    def forward(self, x):
        y = (x * 2 + 1).relu().tanh().sigmoid()
        y = torch.ops.aten.nonzero(y > 0.5).float().sum() + y  # data-dependent: stays in PyTorch
        return (y * 3 - 1).relu().tanh().sigmoid()


def test_each_remaining_split_is_named_with_its_reason():
    gm = export_program(SplitByPython(), (torch.randn(4, 4),)).module()
    parts = partition.partition(gm, 3)
    assert len(parts.regions) == 2
    assert parts.splits and all(item.reason for item in parts.splits)
    assert any("nonzero" in item.op for item in parts.splits)


def test_a_failure_inside_torch_decompositions_names_stage_op_and_line(monkeypatch):
    class Model(nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x) * 2

    program = torch.export.export(Model(), (torch.randn(4),), strict=False)

    def broken(self, *args, **kwargs):
        raise ValueError("Cannot view a tensor with shape [s0, 8] as (8*s0)")

    monkeypatch.setattr(torch.export.ExportedProgram, "run_decompositions", broken)
    with pytest.raises(UnsupportedGraphError, match="stage: decompose") as info:
        decomposition.decompose(program)
    assert isinstance(info.value.__cause__, ValueError)
    assert "Cannot view" in str(info.value)


class TiedWeights(nn.Module):
    """One weight read by two ops of one region, as a language model's tied embedding and output head are."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 16, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.embed(ids))).softmax(-1)


def test_a_weight_shared_by_two_ops_of_a_region_is_one_input_of_its_engine():
    import trtpack

    torch.manual_seed(0)
    model, ids = TiedWeights().eval(), torch.randint(0, 16, (2, 5))
    module = trtpack.compile(model, (ids,), targets=["sm86"], min_block_size=1, fallback=True, verify=True,
                             cache=False)
    summary = module.meta["trtpack_summary"]
    assert len(summary["regions"]) == 1 and not summary["left_in_pytorch"]
    assert summary["regions"][0]["max_abs_error"] is not None  # its ONNX model ran in onnxruntime against PyTorch
    torch.testing.assert_close(module(ids), model(ids))  # the fallback reference here: no engine runs on a CPU


class ViewsAndAWrite(nn.Module):
    def forward(self, x):
        doubled = x.view(-1) * 2  # x's memory is never written: a reshape can stand in for these two views
        flat = x.view(-1)
        y = x.clone()
        y_flat = y.view(-1)       # shares y's memory, which add_ writes: must stay a view
        y.add_(1)
        return doubled + flat + y_flat


def test_only_views_whose_memory_is_never_written_may_become_reshapes():
    program = torch.export.export(ViewsAndAWrite(), (torch.randn(2, 3),), strict=False)
    views = [n for n in program.graph.nodes if n.target is torch.ops.aten.view.default]
    reshapable = decomposition._reshapable_views(program)
    assert len(views) == 3 and len(reshapable) == 2
    [kept_view] = set(views) - set(reshapable)
    assert kept_view.args[0].target is torch.ops.aten.clone.default


def test_a_view_that_fails_only_after_decomposition_is_retried_as_a_reshape(monkeypatch):
    program = torch.export.export(ViewsAndAWrite(), (torch.randn(2, 3),), strict=False)
    real = torch.export.ExportedProgram.run_decompositions
    calls = []

    def fails_on_views(self, *args, **kwargs):
        calls.append([str(n.target) for n in self.graph.nodes if n.target is torch.ops.aten.view.default])
        node = next((n for n in self.graph.nodes if n.target is torch.ops.aten.view.default
                     and n.args[0].op == "placeholder"), None)
        if node is not None:  # as torch fails: inside the interpreter, with the node in a local
            raise ValueError("Cannot view a tensor with shape [2, 3] and strides (1, 2) as a tensor with shape (6,)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.export.ExportedProgram, "run_decompositions", fails_on_views)
    decomposed = decomposition.decompose(program)
    assert len(calls) == 2 and len(calls[1]) == 1  # retried once, with the two reshapable views as reshapes
    assert [n.target for n in program.graph.nodes].count(torch.ops.aten.view.default) == 3  # the caller's intact
    x = torch.randn(2, 3)
    torch.testing.assert_close(decomposed.module()(x), ViewsAndAWrite()(x))


EINSUMS = [  # (equation as a model writes it, operand shapes)
    ("B G H I D, B G H J D -> B G H I J", [(2, 3, 4, 5, 6), (2, 3, 4, 7, 6)]),  # torchvision's MaxViT
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)]), ("ba,ca", [(2, 3), (4, 3)]), ("zA", [(2, 3)]), ("Ab,bA", [(2, 3), (3, 2)]),
    ("...ij,...jk", [(2, 3, 4), (2, 4, 5)]), ("...ij,jk->...ik", [(6, 2, 3, 4), (4, 5)]),
    ("i...,i...->...", [(3, 4, 5), (3, 5)]), ("b...,...->b...", [(2, 3, 4), (4,)]), ("...", [(2, 3)]),
    ("iJ,Jk->ik", [(2, 3), (3, 4)]), ("i,j", [(3,), (4,)]), ("ij, jk ->ik", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUMS)
def test_einsum_equations_are_respelled_for_tensorrt_with_the_same_result(equation, shapes):
    from trtpack.compiler.views import trt_equation

    operands = [torch.randn(shape) for shape in shapes]
    spelled = trt_equation(equation, [x.dim() for x in operands])
    assert spelled is not None and "->" in spelled
    assert set(spelled) <= set("abcdefghijklmnopqrstuvwxyz,->"), spelled
    assert torch.equal(torch.einsum(spelled, *operands), torch.einsum(equation, *operands))


@pytest.mark.parametrize("equation,ranks", [("bij,bjk->bik", [3, 3]), ("ii->i", [2]), ("ij->", [2]),
                                            ("ij,jk->ik", [2]), ("ij->ij", [3]), ("i.j->ij", [2])])
def test_einsum_equations_already_spelled_or_not_of_these_operands_are_left_alone(equation, ranks):
    from trtpack.compiler.views import trt_equation

    assert trt_equation(equation, ranks) is None


def test_an_einsum_node_is_respelled_in_the_graph():
    class Attention(nn.Module):
        def forward(self, q, k):
            return torch.einsum("B H I D, B H J D -> B H I J", q, k).softmax(-1)

    q, k = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 5, 4)
    gm = export_program(Attention(), (q, k)).module()
    parts = partition.partition(gm, 1)
    assert parts.regions == ["trt_region_0"] and not parts.left_out
    [einsum] = [n for n in gm.trt_region_0.graph.nodes if n.target is torch.ops.aten.einsum.default]
    assert einsum.args[0] == "abcd,abed->abce"
    torch.testing.assert_close(gm(q, k), Attention()(q, k))


class Aliases(nn.Module):
    def forward(self, x):  # torch keeps the alias names through export: aten.multiply.Tensor, aten.subtract.Tensor
        return torch.subtract(torch.multiply(x, x.sigmoid()), torch.true_divide(x.tanh(), 2.0 + x.relu()))


def test_an_op_that_only_renames_a_measured_op_becomes_that_op():
    from trtpack.compiler import support, views

    assert views.measured_twin(torch.ops.aten.multiply.Tensor) is torch.ops.aten.mul.Tensor
    assert views.measured_twin(torch.ops.aten.subtract.Tensor) is torch.ops.aten.sub.Tensor
    assert views.measured_twin(torch.ops.aten.mul.Tensor) is None  # measured itself
    assert torch.ops.aten.multiply.Tensor not in support.MEASURED  # else this test shows nothing
    x = torch.randn(2, 8)
    gm = export_program(Aliases(), (x,)).module()
    assert {torch.ops.aten.multiply.Tensor, torch.ops.aten.subtract.Tensor} <= {n.target for n in gm.graph.nodes}
    parts = partition.partition(gm, 1)
    assert parts.regions == ["trt_region_0"] and not parts.left_out, parts.left_out
    ops = parts.region_ops["trt_region_0"]
    assert "aten.multiply.Tensor" not in ops and ops["aten.mul.Tensor"] >= 1 and ops["aten.sub.Tensor"] == 1
    torch.testing.assert_close(gm(x), Aliases()(x))


class HeadsMerged(nn.Module):
    def forward(self, x):  # [b, t, h, d] -> permute -> view: as WavLM's gated relative positions
        return (x.permute(0, 2, 1, 3).contiguous().view(x.shape[0] * x.shape[2], -1) * 2).tanh()


def test_a_region_whose_views_the_exporter_cannot_retrace_is_exported_with_reshapes(monkeypatch):
    """WavLM: the exporter's own pass over a region (fake strides reasoned about for every size) could not view a
    tensor the program viewed; the region is exported again with its views as reshapes, then left as it was."""
    from trtpack.compiler import onnx_export
    from trtpack.errors import UnsupportedGraphError

    x = torch.randn(2, 3, 4, 5)
    gm = export_program(HeadsMerged(), (x,)).module()
    parts = partition.partition(gm, 1)
    program = onnx_export.region_program(getattr(gm, parts.regions[0]), {})
    views = [n for n in program.graph.nodes if n.target is torch.ops.aten.view.default]
    assert views
    real, seen = onnx_export._to_onnx, []

    def exporter(p, message="While executing %view : call_function[target=torch.ops.aten.view.default](...)"):
        has_views = any(n.target is torch.ops.aten.view.default for n in p.graph.nodes)
        seen.append(has_views)
        if has_views:
            raise UnsupportedGraphError("trtpack: ONNX export of the region failed") from ValueError(message)
        return real(p)

    monkeypatch.setattr(onnx_export, "_to_onnx", exporter)
    model = onnx_export.to_onnx(program)
    assert seen == [True, False] and model.data and model.output_names
    assert all(n.target is torch.ops.aten.view.default for n in views)  # the program is left as it was
    seen.clear()
    monkeypatch.setattr(onnx_export, "_to_onnx", lambda p: exporter(p, "Unsupported FX nodes: {'aten.foo'}"))
    with pytest.raises(UnsupportedGraphError):
        onnx_export.to_onnx(program)  # another failure: no second attempt
    assert seen == [True]
