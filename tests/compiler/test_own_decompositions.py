"""Ops the ONNX exporter would keep whole but TensorRT cannot build get a decomposition of trtpack's own
(decomposition.OWN): F.fold (col2im; TensorRT's parser refuses ONNX Col2Im, found by timm's VOLO) becomes one grouped
transposed convolution with one-hot filters; scaled_dot_product_attention over other than 4-D tensors (the exporter
translates 4-D only; found by timm's Hiera, 5-D) becomes the 4-D one between reshapes."""
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


SDPA_CASES = {  # name -> (query, key, value shapes, attn_mask shape or None, mask dtype, is_causal)
    "3-D": ((2, 6, 8), (2, 5, 8), (2, 5, 4), None, None, False),
    "3-D causal": ((2, 6, 8), (2, 6, 8), (2, 6, 8), None, None, True),
    "3-D float mask": ((2, 6, 8), (2, 5, 8), (2, 5, 8), (2, 6, 5), torch.float32, False),
    "2-D": ((6, 8), (5, 8), (5, 8), None, None, False),
    "5-D (Hiera)": ((2, 3, 2, 6, 8), (2, 3, 2, 5, 8), (2, 3, 2, 5, 4), None, None, False),
    "5-D bool mask broadcast": ((2, 3, 2, 6, 8), (2, 3, 2, 5, 8), (2, 3, 2, 5, 8), (1, 2, 1, 5), torch.bool, False),
    "6-D 2-D mask": ((2, 2, 3, 2, 6, 8), (2, 2, 3, 2, 5, 8), (2, 2, 3, 2, 5, 8), (6, 5), torch.float32, False),
}


class Attention(torch.nn.Module):
    def __init__(self, is_causal, scale=None):
        super().__init__()
        self.is_causal, self.scale = is_causal, scale

    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q.tanh(), k * 2, v + 1, attn_mask=mask, is_causal=self.is_causal,
                                              scale=self.scale) * 3


def _sdpa_inputs(case):
    torch.manual_seed(0)
    q, k, v, mask, dtype, causal = SDPA_CASES[case]
    inputs = [torch.randn(q), torch.randn(k), torch.randn(v)]
    if mask is not None:
        inputs.append(torch.rand(mask) > 0.3 if dtype is torch.bool else torch.randn(mask))
    return Attention(causal), inputs


@pytest.mark.parametrize("case", sorted(SDPA_CASES))
def test_sdpa_in_4d_equals_sdpa(case):
    model, inputs = _sdpa_inputs(case)
    q, k, v, *mask = inputs
    got = decomposition._sdpa_in_4d(q, k, v, *mask, is_causal=model.is_causal, scale=0.7)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, *mask, is_causal=model.is_causal,
                                                                   scale=0.7))


def test_sdpa_in_4d_leaves_4d_calls_and_unequal_leading_dims_to_the_exporter():
    q, k = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 5, 8)
    assert decomposition._sdpa_in_4d(q, k, k) is NotImplemented
    q5, k5 = torch.randn(2, 3, 2, 6, 8), torch.randn(1, 3, 2, 5, 8)  # key broadcast over the batch
    assert decomposition._sdpa_in_4d(q5, k5, k5) is NotImplemented


@pytest.mark.parametrize("case", ["3-D float mask", "5-D (Hiera)", "5-D bool mask broadcast"])
def test_sdpa_of_any_rank_ends_in_one_engine(case):
    model, inputs = _sdpa_inputs(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, tuple(inputs), targets=TARGETS, fallback=True, verify=True, cache=False,
                                 min_block_size=1)
    summary = module.meta["trtpack_summary"]
    assert len(summary["regions"]) == 1 and summary["ops_in_pytorch"] == 0, summary["left_in_pytorch"]
    assert summary["regions"][0]["ops"]["aten.scaled_dot_product_attention.default"] == 1
    torch.testing.assert_close(module(*inputs), model(*inputs))
