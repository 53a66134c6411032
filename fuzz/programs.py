"""Small hand-built trtpack programs (no compiler needed) for the fuzz harnesses and tests/reliability.

A program is a torch.cond(engine_usable(...), engine branch, PyTorch reference) around one engine record whose plan
is a TensorRT-RTX header plus filler (never runnable), so on a CPU machine the reference branch runs:
out = relu(x) * 2 + bias for x of shape [batch, 4].
"""
import os

import numpy as np
import torch

from tests.support import plans, records

FEATURES = 4


def plan_tensor(body_size: int = 64) -> torch.Tensor:
    """A 1-D uint8 plan: a valid TensorRT-RTX 64-byte header (layout in docs/FORMAT.md) + zero filler."""
    return plans.as_tensor(plans.rtx_plan_bytes(bytes(body_size)))


def meta_for(plan: torch.Tensor, name: str = "trt_region_0", output: str = "out0") -> str:
    return records.make_record(inputs=[("x", "float32", ["s0", FEATURES])],
                               outputs=[(output, "float32", ["s0", FEATURES])], symbols={"s0": (1, 2, 32)},
                               plan_bytes=plan.numpy().tobytes(), name=name)[1]


class Guarded(torch.nn.Module):
    """One engine with a PyTorch fallback, as trtpack.compile(..., fallback=True) lowers it."""

    def __init__(self, plan: torch.Tensor, meta: str):
        super().__init__()
        self.register_buffer("plan", plan)
        self.register_buffer("bias", torch.arange(FEATURES, dtype=torch.float32))
        self.meta = meta

    def forward(self, x):
        def engine(x):
            return torch.ops.trtpack.execute_engine([x], self.plan, self.meta)[0]

        def reference(x):
            return torch.relu(x) * 2 + self.bias

        usable = torch.ops.trtpack.engine_usable([x], self.plan, self.meta)
        return torch.cond(usable, engine, reference, (x,))


def reference(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) * 2 + torch.arange(FEATURES, dtype=torch.float32)


def exported(body_size: int = 64) -> torch.export.ExportedProgram:
    plan = plan_tensor(body_size)
    batch = torch.export.Dim("batch", min=1, max=32)
    return torch.export.export(Guarded(plan, meta_for(plan)), (torch.randn(2, FEATURES),),
                               dynamic_shapes={"x": {0: batch}})


def example_input(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, FEATURES)).astype(np.float32))


def saved_ep_bytes(folder: str) -> bytes:
    """The bytes of `exported()` as trtpack.save writes it: the base archive the archive fuzzers mutate."""
    import trtpack

    path = os.path.join(folder, "base.ep")
    trtpack.save(exported(), path)
    with open(path, "rb") as f:
        return f.read()
