"""The model zoo of the tests (compiler, artifacts): small models trtpack builds real plans for. Shapes are tiny so a
2-core machine builds them quickly."""
import torch
import torch.nn.functional as F
from torch import nn


@torch.library.custom_op("trtpack_test::channel_roll", mutates_args=())
def channel_roll(x: torch.Tensor) -> torch.Tensor:
    """A custom op trtpack knows nothing about: it must stay in PyTorch, between two engines."""
    return torch.roll(x, shifts=1, dims=1)


@channel_roll.register_fake
def _(x):
    return torch.empty_like(x)


class SmallCNN(nn.Module):
    """conv + batch norm + relu + max pool + adaptive average pool + linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.bn2(self.conv2(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class TinyResNet(nn.Module):
    """ResNet-style: stem, two stages of basic blocks (one with a strided projection), global pool, classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: layer norm, multi-head attention through SDPA, GELU MLP."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        batch, seq, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(batch, seq, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, seq, dim))
        return x + self.mlp(self.norm2(x))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.SiLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))

    def forward(self, x):
        return torch.softmax(self.net(x), dim=-1)


class SplitByCustomOp(nn.Module):
    """Two convertible halves with an op trtpack cannot convert in the middle: two engines, PyTorch between."""

    def __init__(self):
        super().__init__()
        self.before = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                    nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.after = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 4, 1), nn.Sigmoid())

    def forward(self, x):
        return self.after(channel_roll(self.before(x)))


class EncodersSplitByCustomOp(nn.Module):
    """Two encoder blocks with a custom op between them on flattened tokens: the first engine's output has a
    derived size (batch*seq), the second engine reads the batch and sequence sizes from the model input."""

    def __init__(self):
        super().__init__()
        self.first, self.second = EncoderBlock(), EncoderBlock()

    def forward(self, x):
        batch, seq, dim = x.shape
        tokens = channel_roll(self.first(x).reshape(batch * seq, dim))
        return self.second(tokens.reshape(batch, seq, dim) + 1)


class TokensAfterCustomOp(nn.Module):
    """The second region only sees batch*seq tokens (a derived size), never batch or seq on their own."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.mlp = MLP()

    def forward(self, x):
        batch, seq, _ = x.shape
        tokens = torch.relu(self.embed(x)).reshape(batch * seq, 16) * 2 + 1
        return self.mlp(channel_roll(tokens.unsqueeze(1)).squeeze(1))


class DenseExperts(nn.Module):
    """Every token through every expert, weighted by a top-1 router, summed in place (Llama 4's dense mixture of
    experts): torch.export emits a guard over the batch it cannot prove (8*b*min(32, 256*b) == 256*b), though it
    holds for every batch."""

    def __init__(self, experts=4, dim=32):
        super().__init__()
        self.router = nn.Linear(dim, experts, bias=False)
        self.weight = nn.Parameter(torch.randn(experts, dim, dim) / dim ** 0.5)
        self.shared = nn.Linear(dim, dim)

    def forward(self, x):
        experts, dim = self.weight.shape[0], self.weight.shape[1]
        tokens = x.reshape(-1, dim)
        logits = self.router(tokens)
        top, index = torch.topk(logits, 1, dim=1)
        scores = torch.sigmoid(torch.full_like(logits, float("-inf")).scatter(1, index, top))
        routed = tokens.repeat(experts, 1) * scores.transpose(0, 1).reshape(-1, 1)
        routed = torch.bmm(routed.view(experts, -1, dim), self.weight).view(-1, dim)
        out = self.shared(tokens)
        out.add_(routed.reshape(experts, -1, dim).sum(dim=0))
        return out.reshape(x.shape)


def eval_model(cls):
    torch.manual_seed(0)
    model = cls().eval()
    # Non-trivial batch-norm statistics, so folding them is actually tested.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return model
