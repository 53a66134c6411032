"""The per-call input check on the CPU fallback path: a loaded `fallback=True` .ep (the small MLP of
`call_overhead`: width 128, batch 8, one engine whose PyTorch reference runs here) called with trtpack's fast input
check, against the plain exported module of the same model (`torch.export.export(model).module()`, which runs
torch's check), interleaved per repetition; the same loaded program with torch's check put back, and each check
alone, are printed beside. One intra-op thread (the per-call cost is Python and dispatch).

    ./bazelw run //bench:input_check -- [--reps 7] [--iterations 2000]
"""
import argparse
import os
import tempfile
from unittest import mock

import torch

import trtpack
from bench import metrics, models, timing
from trtpack.runtime import input_check


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    model = models.mlp(0.1)
    inputs = models.example_inputs(model)
    path = os.path.join(tempfile.mkdtemp(prefix="trtpack-bench-"), "mlp.ep")
    trtpack.save(metrics.compile_model(model, inputs, ["sm86"], min_block_size=1), path)
    fast = metrics._quiet(trtpack.load, path)
    with mock.patch.object(input_check, "install", lambda module: None):
        with_torchs = metrics._quiet(trtpack.load, path)
    plain = torch.export.export(model, inputs, dynamic_shapes=models.dynamic_shapes(), strict=False).module()

    def loop(fn, n=args.iterations):
        def run():
            with torch.no_grad():
                for _ in range(n):
                    fn(*inputs)
        return run

    module = fast.runner.module
    [hook] = [h for h in module._forward_pre_hooks.values() if getattr(h, "_trtpack_fast", False)]
    from torch.export import _unlift

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in (fast, with_torchs, plain):
            loop(fn, 50)()
        found = metrics.paired(loop(fast), loop(plain), args.reps)
        before = metrics.paired(loop(with_torchs), loop(plain), args.reps)
        torch_check = [metrics._seconds(loop(lambda x: _unlift._check_input_constraints_pre_hook(module, (x,), {})))
                       for _ in range(args.reps)]
        fast_check = [metrics._seconds(loop(lambda x: hook(module, (x,), {}))) for _ in range(args.reps)]
    finally:
        torch.set_num_threads(threads)
    us = lambda seconds: seconds / args.iterations * 1e6  # noqa: E731
    ratio, ratio_before = found["ratio"], before["ratio"]
    print(f"torch {torch.__version__}, {args.reps} reps x {args.iterations} calls, batch 8, 1 thread")
    print(f"loaded fallback .ep, fast check:   {us(found['trtpack']['median']):7.1f} us/call; plain exported module "
          f"{us(found['baseline']['median']):7.1f} us/call; ratio {ratio['median']:.3f} "
          f"[{ratio['min']:.3f}, {ratio['max']:.3f}]")
    print(f"loaded fallback .ep, torch's check: {us(before['trtpack']['median']):7.1f} us/call; ratio "
          f"{ratio_before['median']:.3f} [{ratio_before['min']:.3f}, {ratio_before['max']:.3f}]")
    print(f"the check alone: torch's pre-hook {us(timing.stats(torch_check)['median']):.2f} us, trtpack's "
          f"{us(timing.stats(fast_check)['median']):.2f} us"
          + ("  (this torch checks ranges in graph guard code; its pre-hook checks the inputs' structure)"
             if hasattr(module, "_guards_fn") else ""))


if __name__ == "__main__":
    main()
