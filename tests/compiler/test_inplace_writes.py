"""In-place writes real models use (issue 22, item 3) end in an engine: a token shifted into place
(`shifted[:, 0] = start_id`: fill.Tensor, rewritten by views.py), a slice copied into a slice, masked_fill,
index_put with a constant index, select_scatter; with a dynamic batch, each region's ONNX model verified against
PyTorch by onnxruntime, and the program run like the model."""
import warnings

import pytest
import torch

import trtpack

TARGETS = ["sm86"]


class Writes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.linear = torch.nn.Linear(8, 8)
        self.register_buffer("rows", torch.tensor([0, 2]))

    def forward(self, ids, x):
        shifted = ids.new_zeros(ids.shape)
        shifted[:, 1:] = ids[:, :-1].clone()  # copy_ into a slice
        shifted[:, 0] = 3                      # a start token: fill.Tensor
        h = self.linear(self.embed(shifted)) + x
        h = h.masked_fill(h > 1.0, 1.0)
        h[:, :, 0] = h[:, :, 1] * 2            # select_scatter
        h[:, self.rows] = 0.5                  # index_put with a constant index
        return torch.relu(h)


@pytest.mark.parametrize("fallback", [False, True])
def test_in_place_writes_all_end_in_engines(fallback):
    model = Writes().eval()
    ids, x = torch.randint(0, 10, (2, 5)), torch.randn(2, 5, 8)
    batch = torch.export.Dim("batch", min=1, max=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, (ids, x), dynamic_shapes=({0: batch}, {0: batch}), targets=TARGETS,
                                 fallback=fallback, min_block_size=1, verify=True, cache=False)
    summary = module.meta["trtpack_summary"]
    assert summary["left_in_pytorch"] == [] and summary["ops_in_pytorch"] == 0, summary["left_in_pytorch"]
    assert len(summary["regions"]) == 1
    assert "aten.fill.Tensor" not in summary["regions"][0]["ops"]
    if fallback:
        for size in (1, 2, 7):
            ids, x = torch.randint(0, 10, (size, 5)), torch.randn(size, 5, 8)
            torch.testing.assert_close(module(ids, x), model(ids, x))
