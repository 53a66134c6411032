"""Saves user_model.py compiled under the project's torch as model.ep, model.engine and model.pt2, with inputs and
eager outputs (case.pt), for tests/user_env to load under other torch versions: `python make_main_artifacts.py DIR`."""
import os
import runpy
import sys

import torch

import trtpack

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
user = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "user_model.py"))
model, inputs = user["model"](), user["example_inputs"]()
module = trtpack.compile(model, inputs, dynamic_shapes=user["dynamic_shapes"](), fallback=True, min_block_size=1)
for kind in ("ep", "engine", "pt2"):
    trtpack.save(module, os.path.join(out, f"model.{kind}"))
x = torch.randn(3, 3, 16, 16)
torch.save({"inputs": (x,), "outputs": model(x), "torch": str(torch.__version__)}, os.path.join(out, "case.pt"))
print(f"saved under torch {torch.__version__}: {sorted(os.listdir(out))}")
