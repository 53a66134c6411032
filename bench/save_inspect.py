"""Save and inspect of what trtpack.compile returned (issue 15's goals), as ratios measured in the same run:

- save: trtpack.save(module, "x.ep"), with and without arg_inputs, / torch.export.save of the same compiled program
  (goal <= 1.1: save writes the compiled program as it is, and example inputs never re-export it);
- inspect: trtpack.inspect of a 10 MB and a 1 GB .ep (goal <= 0.1 s: it reads only the manifest), beside
  torch.export.load of the same file for scale.

    ./bazelw run //bench:save_inspect -- --reps=3
"""
import os
import tempfile

from absl import app, flags

import torch

import trtpack
from bench import metrics, models, timing

FLAGS = flags.FLAGS
flags.DEFINE_integer("reps", 3, "repetitions per measurement")
flags.DEFINE_list("save_sizes", ["10", "100"], "MLP weight sizes (MB) for the save benchmark")
flags.DEFINE_list("inspect_sizes", ["10", "1000"], "artifact sizes (MB) for the inspect benchmark")


def save_ratios(weight_mb: float, reps: int, folder: str) -> dict:
    model = models.mlp(weight_mb)
    inputs = models.example_inputs(model)
    compiled = metrics.compile_model(model, inputs, ["sm86"])
    program = compiled._trtpack_program
    ours, with_inputs, baseline = os.path.join(folder, "a.ep"), os.path.join(folder, "b.ep"), os.path.join(folder, "c.ep")
    plain = metrics.paired(lambda: trtpack.save(compiled, ours), lambda: torch.export.save(program, baseline), reps)
    given = metrics.paired(lambda: trtpack.save(compiled, with_inputs, arg_inputs=inputs),
                           lambda: torch.export.save(program, baseline), reps)
    return {"save": plain, "save_with_arg_inputs": given, "file_bytes": os.path.getsize(ours)}


def inspect_times(artifact_mb: float, reps: int, folder: str) -> dict:
    """A small compiled MLP plus an unused buffer that brings the .ep to `artifact_mb`."""
    model = metrics.SameBytes(models.mlp(1), int(artifact_mb * 1e6))
    inputs = models.example_inputs(model.model)
    compiled = metrics.compile_model(model, inputs, ["sm86"])
    path = os.path.join(folder, f"inspect_{artifact_mb:g}.ep")
    trtpack.save(compiled, path)
    inspect = timing.timed(lambda: trtpack.inspect(path), reps)
    load = timing.timed(lambda: metrics._load_plain(path), 1)
    return {"file_bytes": os.path.getsize(path), "inspect_s": inspect, "torch_export_load_s": load}


def main(argv):
    del argv
    with tempfile.TemporaryDirectory(prefix="trtpack-bench-save-") as folder:
        for size in map(float, FLAGS.save_sizes):
            found = save_ratios(size, FLAGS.reps, folder)
            for key in ("save", "save_with_arg_inputs"):
                ratio = found[key]["ratio"]
                print(f"{size:g} MB MLP ({found['file_bytes'] / 1e6:.0f} MB .ep) {key}: trtpack "
                      f"{found[key]['trtpack']['median']:.3f} s / torch.export.save {found[key]['baseline']['median']:.3f} s"
                      f" = {ratio['median']:.2f}x (min {ratio['min']:.2f}, max {ratio['max']:.2f}; goal <= 1.1)")
        for size in map(float, FLAGS.inspect_sizes):
            found = inspect_times(size, FLAGS.reps, folder)
            print(f"inspect of a {found['file_bytes'] / 1e6:.0f} MB .ep: median {found['inspect_s']['median'] * 1e3:.1f} ms "
                  f"(max {found['inspect_s']['max'] * 1e3:.1f} ms; goal <= 100 ms); torch.export.load of it "
                  f"{found['torch_export_load_s']['median']:.2f} s")


if __name__ == "__main__":
    app.run(main)
