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
