"""Artifacts for the Triton tests and benchmark: the support MLP (16 -> 4) compiled with fallback=True, saved."""
import os

import torch

import trtpack
from tests.support.models import MLP, eval_model

MAX_BATCH = 16


def mlp_artifact(folder: str, *, dynamic: bool = True, suffix: str = ".ep") -> tuple:
    """(eager model, path): the MLP compiled with a batch dim from 1 to MAX_BATCH (or static batch 2), saved."""
    model = eval_model(MLP)
    example = torch.randn(4 if dynamic else 2, 16)
    shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if dynamic else None
    compiled = trtpack.compile(model, (example,), dynamic_shapes=shapes, fallback=True)
    path = os.path.join(folder, ("mlp" if dynamic else "mlp_static") + suffix)
    trtpack.save(compiled, path)
    return model, path
