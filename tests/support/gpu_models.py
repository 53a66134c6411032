"""The models of the GPU suite, shared by tests/gpu/make_fixtures.py (compiles them where TensorRT-RTX builds) and
tests/gpu/test_gpu.py (runs them on CUDA). `scale` is a custom op no engine supports, so `split` becomes two engines
with PyTorch between them; it records the device of every call. `chain` is three engines with two custom ops
between them, one of them reading a weight kept in PyTorch."""
import torch

SCALE_CALLS = []  # device of each call of trtpack_gpu_test::scale


@torch.library.custom_op("trtpack_gpu_test::scale", mutates_args=())
def scale(x: torch.Tensor) -> torch.Tensor:
    SCALE_CALLS.append(str(x.device))
    return x * 1.5


@scale.register_fake
def _(x):
    return torch.empty_like(x)


class Scale(torch.nn.Module):
    def forward(self, x):
        return scale(x)


@torch.library.custom_op("trtpack_gpu_test::scale_by", mutates_args=())
def scale_by(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * weight


@scale_by.register_fake
def _(x, weight):
    return torch.empty_like(x)


class ScaleBy(torch.nn.Module):
    """A weight that stays in PyTorch (no engine takes the custom op): a change to it must be seen."""

    def __init__(self, width):
        super().__init__()
        self.register_buffer("weight", torch.linspace(0.5, 1.5, width))

    def forward(self, x):
        return scale_by(x, self.weight)


def mlp(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64)).to(dtype).eval()


def split():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), Scale(), torch.nn.Linear(64, 32),
                               torch.nn.ReLU()).eval()


def chain():
    """Three engines with PyTorch ops between them (two custom ops, one reading a weight of its own)."""
    torch.manual_seed(2)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), Scale(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), ScaleBy(64), torch.nn.Linear(64, 32)).eval()


BATCH = {"min": 1, "opt": 4, "max": 16}
# name -> (model factory, input dtype)
MODELS = {
    "mlp": (mlp, torch.float32),
    "mlp_fp16": (lambda: mlp(torch.float16), torch.float16),
    "mlp_bf16": (lambda: mlp(torch.bfloat16), torch.bfloat16),
    "split": (split, torch.float32),
    "chain": (chain, torch.float32),
}


def example_input(dtype, batch=BATCH["opt"], device="cpu"):
    return torch.randn(batch, 64).to(dtype=dtype, device=device)


def dynamic_shapes():
    return ({0: torch.export.Dim("batch", min=BATCH["min"], max=BATCH["max"])},)
