"""A model with an operation TensorRT cannot take (bucketize: no ONNX/TensorRT equivalent) between two convertible
parts: trtpack builds two engines and leaves the middle in PyTorch."""
import torch
from torch import nn


class GraphBreak(nn.Module):
    def __init__(self):
        super().__init__()
        self.before = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU())
        self.register_buffer("bins", torch.linspace(-2, 2, 9))
        self.after = nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 16), nn.LayerNorm(16), nn.Tanh())

    def forward(self, x):
        h = self.before(x)
        levels = torch.bucketize(h, self.bins).to(h.dtype)  # stays in PyTorch
        h = h + 0.1 * levels
        return self.after(h)


def model():
    torch.manual_seed(0)
    return GraphBreak().eval()


def example_inputs():
    return (torch.randn(4, 32),)


def dynamic_shapes():
    return ({0: torch.export.Dim("batch", min=1, max=256)},)
