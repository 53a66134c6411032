"""Constant folding before partitioning (issue 22, item 2): subgraphs of weights, constants and static sizes are
computed once at compile time (a mask written slice by slice, a linspace grid, a weight standardized on every call),
recorded in the summary, with a size cap; anything that reads an input, or a random op, is left alone."""
import warnings

import pytest
import torch
import torch.nn.functional as F

import trtpack
from trtpack.compiler import fold

TARGETS = ["sm86"]


class WindowMask(torch.nn.Module):
    """A shifted-window style mask written slice by slice, plus a linspace grid through detach."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(16, 16)

    def forward(self, x):
        mask = torch.zeros(16, 16)
        label = 0
        for h in (slice(0, 8), slice(8, 12), slice(12, None)):
            for w in (slice(0, 8), slice(8, 12), slice(12, None)):
                mask[h, w] = label
                label += 1
        return torch.relu(self.linear(x) + mask) * torch.linspace(0, 1, 16).detach()


class StandardizedConv(torch.nn.Module):
    """Weight standardization: a batch_norm over the weight on every call."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        w = self.conv.weight
        w = F.batch_norm(w.reshape(1, 8, -1), None, None, training=True, momentum=0.0, eps=1e-5).reshape_as(w)
        return F.relu(F.conv2d(x, w, self.conv.bias))


class InputDependent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x):
        noise = torch.rand(8) * self.linear.bias  # random: computed on every call
        shifted = x.clone()
        shifted[:, 0] = 3.0  # reads the input
        return self.linear(shifted) + noise.sum() * 0


def compile_quiet(model, x, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return trtpack.compile(model, (x,), targets=TARGETS, cache=False, fallback=True, min_block_size=1,
                               **options)


def test_a_mask_written_slice_by_slice_becomes_one_constant_and_nothing_stays_in_pytorch(tmp_path):
    model, x = WindowMask().eval(), torch.randn(2, 16, 16)
    module = compile_quiet(model, x)
    summary = module.meta["trtpack_summary"]
    folded = summary["folded"]
    assert sorted((c["shape"], c["dtype"]) for c in folded["constants"]) == [([16], "float32"), ([16, 16], "float32")]
    assert folded["ops"] >= 60 and summary["ops_in_pytorch"] == 0 and len(summary["regions"]) == 1
    assert "fold" in summary["seconds"]
    torch.testing.assert_close(module(x), model(x))
    path = str(tmp_path / "mask.ep")
    trtpack.save(module, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(trtpack.load(path)(x), model(x))


def test_a_standardized_weight_is_computed_once():
    model, x = StandardizedConv().eval(), torch.randn(2, 3, 8, 8)
    summary = compile_quiet(model, x).meta["trtpack_summary"]
    [constant] = summary["folded"]["constants"]
    assert constant["shape"] == [8, 3, 3, 3] and constant["ops"] >= 1
    assert summary["ops_in_pytorch"] == 0
    assert summary["regions"][0]["ops"] == {"aten.conv2d.default": 1, "aten.relu.default": 1}


def test_what_reads_an_input_or_a_random_op_is_not_folded():
    model, x = InputDependent().eval(), torch.randn(2, 8)
    module = compile_quiet(model, x)
    assert module.meta["trtpack_summary"]["folded"] == {"constants": [], "ops": 0}
    assert any("rand" in str(n.target) for n in module.graph.nodes)  # still drawn on every call


def test_a_constant_over_the_size_cap_is_computed_at_run_time_instead(monkeypatch):
    model, x = WindowMask().eval(), torch.randn(2, 16, 16)
    monkeypatch.setattr(fold, "MAX_BYTES", 100)  # the mask is 1 KiB, read from no weight: over the cap
    folded = compile_quiet(model, x).meta["trtpack_summary"]["folded"]
    assert [c["shape"] for c in folded["constants"]] == [[16]]  # the 64-byte grid only


def test_build_single_engine_does_not_fold():
    from trtpack.compiler import pipeline

    program = torch.export.export(StandardizedConv().eval(), (torch.randn(1, 3, 8, 8),))
    # one engine of the program as exported: the batch_norm over the weight is in no table, so it is refused
    with pytest.raises(trtpack.UnsupportedGraphError, match="unsupported nodes"):
        pipeline.build_single_engine(program, (torch.randn(1, 3, 8, 8),), targets=TARGETS, cache=False)
