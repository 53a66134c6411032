"""Ops the ONNX exporter would keep whole but TensorRT cannot build get a decomposition of trtpack's own
(decomposition.OWN): F.fold (col2im; TensorRT's parser refuses ONNX Col2Im, found by timm's VOLO) becomes one grouped
transposed convolution with one-hot filters."""
import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F

import trtpack
from trtpack.compiler import decomposition

TARGETS = ["sm86"]


class OutlookFold(torch.nn.Module):
    """Unfold 3x3 neighbourhoods, mix them, fold them back with overlaps adding up (VOLO's outlook attention)."""

    def __init__(self, channels=8):
        super().__init__()
        self.mix = torch.nn.Linear(9, 9)
        self.proj = torch.nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        batch, channels, height, width = x.shape
        patches = F.unfold(x, kernel_size=3, padding=1, stride=2)  # (batch, channels*9, blocks)
        patches = self.mix(patches.reshape(batch, channels, 9, -1).transpose(2, 3)).transpose(2, 3)
        image = F.fold(patches.reshape(batch, channels * 9, -1), (height, width), kernel_size=3, padding=1, stride=2)
        return self.proj(image)


@pytest.mark.parametrize("kernel,dilation,padding,stride,size", [
    (k, d, p, s, size) for k, d, p, s, size in itertools.product(
        [(3, 3), (2, 3)], [(1, 1), (2, 1)], [(0, 0), (1, 2)], [(1, 1), (2, 3)], [(8, 9), (7, 11)])])
def test_col2im_decomposition_equals_fold(kernel, dilation, padding, stride, size):
    blocks = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, d, p, s in zip(size, kernel, dilation, padding, stride)]
    columns = torch.randn(2, 3 * kernel[0] * kernel[1], blocks[0] * blocks[1])
    expected = F.fold(columns, size, kernel, dilation, padding, stride)
    got = decomposition._col2im(columns, list(size), list(kernel), list(dilation), list(padding), list(stride))
    torch.testing.assert_close(got, expected)
    unbatched = decomposition._col2im(columns[0], list(size), list(kernel), list(dilation), list(padding), list(stride))
    torch.testing.assert_close(unbatched, expected[0])


def test_fold_ends_in_one_engine_with_a_dynamic_batch():
    torch.manual_seed(0)
    model, x = OutlookFold().eval(), torch.randn(2, 8, 12, 12)
    batch = torch.export.Dim("batch", min=1, max=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, (x,), dynamic_shapes=({0: batch},), targets=TARGETS, fallback=True,
                                 verify=True, cache=False)
    summary = module.meta["trtpack_summary"]
    assert len(summary["regions"]) == 1 and summary["ops_in_pytorch"] == 0, summary["left_in_pytorch"]
    assert summary["regions"][0]["max_abs_error"] < 1e-4
    for size in (1, 5):
        y = torch.randn(size, 8, 12, 12)
        torch.testing.assert_close(module(y), model(y), atol=1e-5, rtol=1e-5)
