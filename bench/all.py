"""trtpack benchmarks: save, load, size, peak load memory, compile time (with and without fallback, on MLPs and on
ResNet-50-like / BERT-like models), engine-cache hits, per-call overhead and .pt2 load,
each as a ratio against a baseline measured in the same run. Prints a table and writes JSON.

    ./bazelw run //bench:all -- --sizes=10,100 --reps=3 --json=/tmp/bench.json
    ./bazelw run //bench:all -- --sizes=10,100 --metrics=cache_hit --reps=2    # only some metrics
"""
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time

from absl import app, flags
from absl import logging as absl_logging

import torch

import trtpack
from bench import metrics, models, report
from bench.hand_compile import hand_compile

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["10", "100", "500"], "fp32 weight sizes of the MLPs, in MB")
flags.DEFINE_list("pt2_sizes", None, "sizes that also measure .pt2 load (AOTInductor compiles are slow); "
                  "default: the smallest of --sizes")
flags.DEFINE_bool("models", True, "also compile the ResNet-50-like CNN and the BERT-like encoder")
flags.DEFINE_integer("reps", 3, "repetitions per measurement (median, min, max reported)")
flags.DEFINE_integer("call_iterations", 2000, "calls per repetition for the per-call overhead")
flags.DEFINE_list("targets", ["sm86"], "compute capabilities to build for")
flags.DEFINE_string("json", "bench.json", "where to write the results")
flags.DEFINE_list("metrics", None, f"measure only these (default: all): {', '.join(report.TARGETS)}")
flags.DEFINE_string("workdir", None, "folder for the temporary artifacts (default: a new temporary folder)")


def run(sizes, reps, targets, pt2_sizes, call_iterations, workdir=None, compile_models=None, wanted=None) -> dict:
    """Runs every benchmark (or the `wanted` metrics); returns the results (JSON-serialisable), each metric with its
    target verdict. compile_models: name -> (model, inputs) for the whole-model compile metrics
    (bench.models.compile_models)."""
    wanted = list(wanted or report.TARGETS)
    unknown = sorted(set(wanted) - set(report.TARGETS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(report.TARGETS)}")
    warm_up(targets)
    results = {"trtpack_version": trtpack.__version__, "torch_version": torch.__version__,
               "machine": platform.platform(), "cpus": _cpus(), "reps": reps, "targets": targets,
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sizes": []}
    for size in sizes:
        folder = tempfile.mkdtemp(prefix=f"trtpack-bench-{size:g}mb-", dir=workdir)
        try:
            results["sizes"].append(metrics.for_size(size, reps, folder, targets, size in pt2_sizes, wanted))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    compile_wanted = [m for m in metrics.COMPILE_METRICS if m in wanted]
    results["models"] = [metrics.for_model(name, model, inputs, targets, reps, compile_wanted)
                         for name, (model, inputs) in (compile_models or {}).items()] if compile_wanted else []
    if "call_overhead" in wanted:
        results["call_overhead"] = metrics.call_overhead(call_iterations, reps, targets)
    results["rows"] = [{"model": label, "metric": metric, "ratio": entry["ratio"]["median"],
                        "target": entry["target"], "pass": entry["pass"]}
                       for label, metric, entry in report.verdicts(results)]
    return results


def warm_up(targets) -> None:
    """One tiny hand-run and trtpack compile first, so neither side's first measurement pays the one-time imports
    and the ONNX exporter's registry."""
    model = models.mlp(0.1)
    inputs = models.example_inputs(model)
    hand_compile(model, inputs, targets)
    metrics.compile_model(model, inputs, targets)


def _cpus() -> int:
    return os.cpu_count() or 0


def main(argv):
    del argv
    logging.getLogger("trtpack").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.WARNING)  # onnxscript's passes log every step through absl
    sizes = [float(s) for s in FLAGS.sizes]
    pt2_sizes = [float(s) for s in FLAGS.pt2_sizes] if FLAGS.pt2_sizes is not None else [min(sizes)]
    results = run(sizes, FLAGS.reps, FLAGS.targets, pt2_sizes, FLAGS.call_iterations, FLAGS.workdir,
                  models.compile_models() if FLAGS.models else None, FLAGS.metrics)
    print(report.table(report.verdicts(results)))
    print(report.legend())
    print(report.diagnostics(results))
    # `bazel run` starts in the runfiles tree; a relative --json means the caller's folder.
    path = os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), FLAGS.json)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
