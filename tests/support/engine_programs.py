"""Programs around one engine record, shaped as trtpack.compile lowers them, built by hand (no compiler needed).

On a machine without a usable engine (every machine we have) `EngineWithFallback` runs its PyTorch reference and
`EngineOnly` raises the engine's own error.
"""
import torch


class EngineOnly(torch.nn.Module):
    """x -> execute_engine(x): what compile(..., fallback=False) makes of a region."""

    def __init__(self, plan: torch.Tensor, meta: str):
        super().__init__()
        self.register_buffer("plan", plan)
        self.meta = meta

    def forward(self, x):
        return torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0]


class EngineWithFallback(torch.nn.Module):
    """x -> torch.cond(engine_usable, engine, reference): what compile(..., fallback=True) makes of a region."""

    def __init__(self, plan: torch.Tensor, meta: str, reference: torch.nn.Module):
        super().__init__()
        self.register_buffer("plan", plan)
        self.meta = meta
        self.reference = reference

    def forward(self, x):
        usable = torch.ops.trtpack.engine_usable([x], self.plan, self.meta)
        return torch.cond(usable,
                          lambda x: torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0],
                          lambda x: self.reference(x),
                          (x,))
