"""One small program per group of ATen ops in trtpack's support table (test_support_matrix.py converts each)."""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn


class Fn(nn.Module):
    def __init__(self, fn, **modules):
        super().__init__()
        self.fn = fn
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, *xs):
        return self.fn(self, *xs)


@dataclass
class Case:
    id: str
    make: Callable[[], nn.Module]
    inputs: Callable[[], tuple]
    dims: Optional[tuple] = None  # per input: {axis: Dim}

    @property
    def dynamic_shapes(self):
        return None if self.dims is None else (self.dims,)  # Fn.forward takes *xs


def r(*shape):
    return torch.randn(*shape)


def _bn():
    bn = nn.BatchNorm2d(4).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    return bn


BATCH = torch.export.Dim("batch", min=1, max=16)

CASES = [
    Case("conv2d", lambda: Fn(lambda s, x: s.c(x), c=nn.Conv2d(3, 4, 3, padding=1)), lambda: (r(2, 3, 8, 8),),
         ({0: BATCH},)),
    Case("conv_transpose2d", lambda: Fn(lambda s, x: s.c(x), c=nn.ConvTranspose2d(4, 2, 2, stride=2)),
         lambda: (r(1, 4, 4, 4),)),
    Case("conv1d_groups", lambda: Fn(lambda s, x: s.c(x), c=nn.Conv1d(4, 4, 3, groups=2)), lambda: (r(1, 4, 10),)),
    Case("batch_norm", lambda: Fn(lambda s, x: s.bn(x), bn=_bn()), lambda: (r(2, 4, 5, 5),), ({0: BATCH},)),
    Case("layer_norm", lambda: Fn(lambda s, x: s.ln(x), ln=nn.LayerNorm(8)), lambda: (r(2, 3, 8),)),
    Case("linear", lambda: Fn(lambda s, x: s.l(x), l=nn.Linear(8, 6)), lambda: (r(3, 8),), ({0: BATCH},)),
    Case("mm", lambda: Fn(lambda s, a, b: torch.mm(a, b)), lambda: (r(3, 5), r(5, 4))),
    Case("bmm", lambda: Fn(lambda s, a, b: torch.bmm(a, b)), lambda: (r(2, 3, 5), r(2, 5, 4))),
    Case("relu_relu6", lambda: Fn(lambda s, x: F.relu(x) + F.relu6(x * 4)), lambda: (r(4, 8),)),
    Case("gelu", lambda: Fn(lambda s, x: F.gelu(x) + F.gelu(x, approximate="tanh")), lambda: (r(4, 8),)),
    Case("silu_sigmoid", lambda: Fn(lambda s, x: F.silu(x) + torch.sigmoid(x)), lambda: (r(4, 8),)),
    Case("tanh_leaky_relu", lambda: Fn(lambda s, x: torch.tanh(x) + F.leaky_relu(x, 0.1)), lambda: (r(4, 8),)),
    Case("clamp", lambda: Fn(lambda s, x: torch.clamp(x, -0.5, 0.5)), lambda: (r(4, 8),)),
    Case("softmax", lambda: Fn(lambda s, x: torch.softmax(x, -1) + torch.log_softmax(x, 1)), lambda: (r(2, 4, 8),),
         ({0: BATCH},)),
    Case("arithmetic", lambda: Fn(lambda s, a, b: (a + b) * (a - b) / (b.abs() + 1) + a * 0.5),
         lambda: (r(4, 8), r(4, 8))),
    Case("floor_divide", lambda: Fn(lambda s, a, b: torch.div(a, b.abs() + 0.5, rounding_mode="floor")),
         lambda: (r(4, 8) * 4, r(4, 8))),
    Case("pow", lambda: Fn(lambda s, a, b: a.pow(2) + (a.abs() + 0.1).pow(b)), lambda: (r(4, 8), r(4, 8))),
    Case("sqrt_rsqrt_exp_log", lambda: Fn(lambda s, x: (x.abs() + 1).sqrt() + (x.abs() + 1).rsqrt()
                                          + x.exp() + (x.abs() + 1).log()), lambda: (r(4, 8),)),
    Case("neg_reciprocal_erf_sin_cos", lambda: Fn(lambda s, x: -x + (x.abs() + 1).reciprocal() + torch.erf(x)
                                                  + x.sin() + x.cos()), lambda: (r(4, 8),)),
    Case("maximum_minimum", lambda: Fn(lambda s, a, b: torch.maximum(a, b) - torch.minimum(a, b)),
         lambda: (r(4, 8), r(4, 8))),
    Case("compare_where", lambda: Fn(lambda s, a, b: torch.where(
        torch.logical_or(torch.logical_and(a > b, a != 0.5) | (a < b), ~(a == 0.25)) & torch.logical_not(a == b), a, b)
        + torch.where((a > 0.1) | (a < -0.1) | (a >= 1.0) | (a <= -1.0), a, 0.0)), lambda: (r(4, 8), r(4, 8))),
    Case("any_mask", lambda: Fn(lambda s, x: torch.where((x > 1.0).any(dim=-1, keepdim=True), x, -x)),
         lambda: (r(4, 8),)),
    Case("reductions", lambda: Fn(lambda s, x: x.mean(-1) + x.sum(1) + x.amax(-1) + x.amin(-1)), lambda: (r(2, 6, 6),),
         ({0: BATCH},)),
    Case("view_permute_expand", lambda: Fn(lambda s, x: x.view(2, 4, 3).permute(2, 0, 1).unsqueeze(1)
                                           .expand(3, 5, 2, 4).clone() * x[:1].squeeze(0).sum()), lambda: (r(8, 3),)),
    Case("cat_slice_select", lambda: Fn(lambda s, x: torch.cat([x[:, 1:5], x[:, :4] * 2], 1) + x[:, 2:3]
                                        + x.select(1, 0).unsqueeze(1)), lambda: (r(4, 8),), ({0: BATCH},)),
    Case("split", lambda: Fn(lambda s, x: sum(t.sum(1, keepdim=True) for t in x.split([2, 6], 1))), lambda: (r(4, 8),)),
    Case("gather", lambda: Fn(lambda s, x, i: torch.gather(x, 1, i)),
         lambda: (r(4, 8), torch.randint(0, 8, (4, 3)))),
    Case("index", lambda: Fn(lambda s, x, i: x[i] * 2), lambda: (r(6, 4), torch.tensor([0, 5, 2, 2]))),
    Case("pad", lambda: Fn(lambda s, x: F.pad(x, (1, 1, 2, 0)) * 2), lambda: (r(1, 2, 4, 4),)),
    Case("embedding", lambda: Fn(lambda s, i: s.e(i) * 2, e=nn.Embedding(10, 8)),
         lambda: (torch.tensor([[1, 2, 9], [0, 0, 4]]),)),
    Case("max_pool", lambda: Fn(lambda s, x: F.max_pool2d(x, 2) * 2), lambda: (r(2, 2, 8, 8),), ({0: BATCH},)),
    Case("avg_pools", lambda: Fn(lambda s, x: F.avg_pool2d(x, 2) + F.adaptive_avg_pool2d(x, 4)),
         lambda: (r(1, 2, 8, 8),)),
    Case("casts", lambda: Fn(lambda s, x: x.to(torch.float16).float() + x.to(torch.int32).float()),
         lambda: (r(4, 8) * 4,)),
    Case("full", lambda: Fn(lambda s, x: torch.full_like(x, 2.0) * x + torch.full((4, 8), 0.5)
                            + torch.scalar_tensor(3.0)), lambda: (r(4, 8),)),
    Case("attention", lambda: Fn(lambda s, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
         lambda: (r(1, 2, 5, 8), r(1, 2, 5, 8), r(1, 2, 5, 8))),
]
