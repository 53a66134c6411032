"""A small transformer encoder (SDPA attention, layer norm, GELU) with dynamic batch and sequence length."""
import torch
from torch import nn
from torch.nn import functional as F


class EncoderBlock(nn.Module):
    def __init__(self, dim: int = 64, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.norm2(x))


class TinyEncoder(nn.Module):
    def __init__(self, vocab: int = 1000, dim: int = 64, depth: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.Sequential(*[EncoderBlock(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens):
        return self.norm(self.blocks(self.embed(tokens)))


def model():
    torch.manual_seed(0)
    return TinyEncoder().eval()


def example_inputs():
    return (torch.randint(0, 1000, (2, 16)),)


def dynamic_shapes():
    return ({0: torch.export.Dim("batch", min=1, max=16), 1: torch.export.Dim("seq", min=2, max=128)},)
