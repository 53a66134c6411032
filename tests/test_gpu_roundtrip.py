"""On a CUDA machine: compile -> save (.ep, .pt2) -> load in a fresh process -> compare with eager on CUDA.

Where the engine is usable the TensorRT path must have run; where it is not (e.g. TensorRT-RTX on an SM90 GPU),
the PyTorch fallback must have run and said why.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (this machine has none); runs on GPU machines only")

sys.path.insert(0, "examples")


@pytest.mark.parametrize("suffix", [".ep", ".pt2"])
def test_roundtrip_on_cuda(tmp_path, suffix):
    import resnet_small

    import trtpack
    from trtpack.cli import roundtrip

    model = resnet_small.model().cuda()
    inputs = tuple(t.cuda() for t in resnet_small.example_inputs())
    compiled = trtpack.compile(model, inputs, dynamic_shapes=resnet_small.dynamic_shapes(), fallback=True)
    with torch.no_grad():
        eager = model(*inputs)
    case = str(tmp_path / "case.safetensors")
    roundtrip.write_case(case, [t.cpu() for t in inputs], {}, eager.cpu())
    path = str(tmp_path / f"model{suffix}")
    trtpack.save(compiled, path)
    usable = all(e["usable_here"] for e in trtpack.inspect(path)["engines"])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-m", "trtpack.cli.roundtrip", path, case, "cuda"], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    result = json.loads(out)
    assert result["ok"], result
    assert result["ran"] == ("tensorrt" if usable else "pytorch fallback"), result
    if not usable:
        assert "cannot run here" in result["reason"], result
