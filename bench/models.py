"""Models built in the benchmark from plain torch.nn modules (no download, no new dependency): MLPs sized to a given
amount of fp32 weights, a ResNet-50-like CNN and a BERT-like encoder."""
import math

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


class Bottleneck(torch.nn.Module):
    """ResNet-50's block: 1x1 → 3x3 (stride) → 1x1 (×4 channels), batch norms, a projected shortcut when needed."""

    def __init__(self, inputs: int, width: int, stride: int):
        super().__init__()
        outputs = width * 4
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(inputs, width, 1, bias=False), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, stride, 1, bias=False), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.Conv2d(width, outputs, 1, bias=False), torch.nn.BatchNorm2d(outputs))
        self.shortcut = torch.nn.Identity() if stride == 1 and inputs == outputs else torch.nn.Sequential(
            torch.nn.Conv2d(inputs, outputs, 1, stride, bias=False), torch.nn.BatchNorm2d(outputs))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet_like(width: int = 64, blocks=(3, 4, 6, 3), classes: int = 1000) -> torch.nn.Module:
    """ResNet-50's layout (stem, four stages of bottlenecks, pooled classifier) from plain torch.nn modules;
    width=64 and blocks=(3, 4, 6, 3) is ResNet-50 itself (25.6 M parameters)."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, width, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
              torch.nn.MaxPool2d(3, 2, 1)]
    channels = width
    for stage, count in enumerate(blocks):
        for index in range(count):
            layers.append(Bottleneck(channels, width * 2 ** stage, 2 if index == 0 and stage > 0 else 1))
            channels = width * 2 ** stage * 4
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(channels, classes)]
    return torch.nn.Sequential(*layers).eval()


class EncoderLayer(torch.nn.Module):
    """A BERT layer: multi-head self-attention and a GELU feed-forward, each with a residual and post-LayerNorm."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)
        self.norm1, self.norm2 = torch.nn.LayerNorm(hidden), torch.nn.LayerNorm(hidden)
        self.ffn = torch.nn.Sequential(torch.nn.Linear(hidden, 4 * hidden), torch.nn.GELU(),
                                       torch.nn.Linear(4 * hidden, hidden))

    def forward(self, x):
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hidden // self.heads), dim=-1)
        context = (attention @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.norm1(x + self.out(context))
        return self.norm2(x + self.ffn(x))


class BertLike(torch.nn.Module):
    """A BERT-style encoder from plain torch.nn modules: token + position embeddings, LayerNorm, `layers` encoder
    layers, a pooled tanh head. BERT-base is hidden=768, layers=12, heads=12, vocab=30522."""

    def __init__(self, hidden: int = 512, layers: int = 6, heads: int = 8, vocab: int = 8192, max_seq: int = 512):
        super().__init__()
        torch.manual_seed(0)
        self.tokens = torch.nn.Embedding(vocab, hidden)
        self.positions = torch.nn.Embedding(max_seq, hidden)
        self.norm = torch.nn.LayerNorm(hidden)
        self.layers = torch.nn.Sequential(*[EncoderLayer(hidden, heads) for _ in range(layers)])
        self.pool = torch.nn.Linear(hidden, hidden)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.layers(self.norm(self.tokens(ids) + self.positions(positions)))
        return torch.tanh(self.pool(x[:, 0]))


SEQ = 64


def bert_like(**sizes) -> torch.nn.Module:
    return BertLike(**sizes).eval()


def image_inputs(size: int = 64) -> tuple:
    return (torch.randn(EXAMPLE_BATCH, 3, size, size),)


def token_inputs(vocab: int = 8192) -> tuple:
    torch.manual_seed(1)
    return (torch.randint(0, vocab, (EXAMPLE_BATCH, SEQ)),)


# Whole models for the compile metrics: name -> (model, example inputs), full size and a tiny one for the smoke test.
def compile_models(tiny: bool = False) -> dict:
    if tiny:
        return {"resnet50-like": (resnet_like(width=8, blocks=(1, 1, 1, 1), classes=10), image_inputs(32)),
                "bert-like": (bert_like(hidden=64, layers=1, heads=2, vocab=256), token_inputs(256))}
    return {"resnet50-like": (resnet_like(), image_inputs()), "bert-like": (bert_like(), token_inputs())}
