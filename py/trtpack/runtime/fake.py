"""Fake (meta) kernels of the two ops: shapes and dtypes only, so torch.export, re-export and AOTInductor can trace
graphs holding engines on any machine, with dynamic shapes kept symbolic."""
from typing import List

import torch

from trtpack.runtime import shapes


@torch.library.register_fake("trtpack::execute_engine")
def _execute_engine_fake(inputs: List[torch.Tensor], plan: torch.Tensor, meta: str) -> List[torch.Tensor]:
    spec = shapes.engine_spec(meta)
    device = inputs[0].device if inputs else plan.device
    return [torch.empty(shape, dtype=out.dtype, device=device)
            for shape, out in zip(shapes.output_shapes(spec, inputs), spec.outputs)]


@torch.library.register_fake("trtpack::engine_usable")
def _engine_usable_fake(inputs: List[torch.Tensor], plan: torch.Tensor, meta: str) -> torch.Tensor:
    # Every real kernel answers on the CPU (no device sync to read the verdict), so the fake does too.
    return torch.empty((), dtype=torch.bool)
