"""The model of tests/user_env: a conv, a pooling and a linear head with a dynamic batch (a `trtpack export` file)."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.head(y).softmax(-1)


def model():
    torch.manual_seed(0)
    return Net().eval()


def example_inputs():
    return (torch.randn(2, 3, 16, 16),)


def dynamic_shapes():
    return ({0: torch.export.Dim("batch", min=1, max=32)},)
