"""Models built in the benchmark (no download): MLPs of Linear layers sized to a given amount of fp32 weights."""
import torch

MAX_BATCH = 64
EXAMPLE_BATCH = 8


def _width(weight_bytes: int) -> int:
    for width in (128, 256, 512, 1024):
        if weight_bytes <= 24 * 4 * width * width:  # keep the layer count small: builds stay short
            return width
    return 2048


def mlp(weight_mb: float) -> torch.nn.Sequential:
    """Linear+ReLU layers holding about `weight_mb` MB (10**6 bytes) of fp32 weights and biases."""
    weight_bytes = int(weight_mb * 1e6)
    width = _width(weight_bytes)
    layers = max(2, round(weight_bytes / (4 * (width * width + width))))
    modules = []
    for index in range(layers):
        modules.append(torch.nn.Linear(width, width))
        if index + 1 < layers:
            modules.append(torch.nn.ReLU())
    torch.manual_seed(0)
    return torch.nn.Sequential(*modules).eval()


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.state_dict().values())


def example_inputs(model: torch.nn.Sequential) -> tuple:
    return (torch.randn(EXAMPLE_BATCH, model[0].in_features),)


def dynamic_shapes() -> tuple:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
