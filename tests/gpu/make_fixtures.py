"""Compiles the GPU suite's models where TensorRT-RTX builds (a CPU machine is enough), with the TensorRT stand-in
requested so each region's reference program is registered by plan_sha256: writes OUT/<name>.ep, OUT/mlp.engine
(+ .json), OUT/<name>.weights.pt (eager weights) and OUT/registry/, all compiled with fallback=False; and
OUT/mlp_fallback.ep, the mlp compiled with fallback=True (its engine_usable decides which branch runs).

    TRTPACK_TENSORRT_STANDIN=1 PYTHONPATH=py python -m tests.gpu.make_fixtures OUT   (from the repository root)
"""
import os
import sys

import torch

from tests.support import gpu_models as models


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    os.environ["TRTPACK_STANDIN_DIR"] = os.path.join(os.path.abspath(out), "registry")
    if os.environ.get("TRTPACK_TENSORRT_STANDIN") != "1":
        sys.exit("make_fixtures: set TRTPACK_TENSORRT_STANDIN=1 so compile registers the regions")
    import trtpack

    for name, (factory, dtype) in models.MODELS.items():
        model = factory()
        compiled = trtpack.compile(model, (models.example_input(dtype),), dynamic_shapes=models.dynamic_shapes(),
                                   min_block_size=1, fallback=False)
        regions = compiled.meta["trtpack_summary"]["regions"]
        print(f"{name}: {len(regions)} engine(s), left in PyTorch: "
              f"{compiled.meta['trtpack_summary']['left_in_pytorch']}")
        trtpack.save(compiled, os.path.join(out, f"{name}.ep"))
        torch.save(model.state_dict(), os.path.join(out, f"{name}.weights.pt"))
        if name == "mlp":
            trtpack.save(compiled, os.path.join(out, "mlp.engine"))
            with_fallback = trtpack.compile(model, (models.example_input(dtype),),
                                            dynamic_shapes=models.dynamic_shapes(), min_block_size=1, fallback=True)
            trtpack.save(with_fallback, os.path.join(out, "mlp_fallback.ep"))


if __name__ == "__main__":
    main(sys.argv[1])
