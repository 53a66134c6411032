"""AOTInductor compiles a fallback program holding an engine, with a dynamic batch, using the fake kernels for the
engine branch's shapes; the package runs on CPU, where the C++ engine_usable says false and the reference runs."""
import os
import sys

import torch
from torch.export import Dim

import trtpack  # noqa: F401  (loads the ops and their fake kernels)

sys.path.insert(0, os.path.dirname(__file__))
from engine_records import EngineWithFallback, make_record  # noqa: E402


def test_aoti_package_with_an_engine_and_dynamic_batch_runs_the_reference_on_cpu(tmp_path):
    plan, meta = make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 8])],
                             symbols={"s0": (1, 4, 64)})
    model = EngineWithFallback(plan, meta)
    ep = torch.export.export(model, (torch.randn(4, 3),), dynamic_shapes={"x": {0: Dim("batch", min=1, max=64)}})
    path = torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp_path / "engine.pt2"))
    runner = torch._inductor.aoti_load_package(path)
    for batch in (1, 9, 64):
        x = torch.randn(batch, 3)
        torch.testing.assert_close(runner(x), x @ model.weight)
