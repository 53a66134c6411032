"""Serving with Triton against calling the loaded module in the same process: requests/s and p50/p99 latency at
batch 1 and at a batch inside the compiled range, one client in turn and 8 concurrent clients.

The model is bench.models.mlp(--weight_mb) compiled with fallback=True and a batch range 1..64, saved as .ep, served
by the real tritonserver (trtpack.triton.server, Python backend, KIND_CPU: on a machine without a usable GPU the
PyTorch fallback runs, in the server as in process). Each served request carries its batch; 8 concurrent clients
let Triton's dynamic batcher join them.

    ./bazelw run //bench:triton_serving -- --requests=300 --json=/tmp/triton.json
"""
import json
import os
import statistics
import tempfile
import threading
import time
import warnings

import numpy as np
import torch
from absl import app, flags

import trtpack
from bench import models
from trtpack.triton import model_spec, server, write_repository

FLAGS = flags.FLAGS
flags.DEFINE_float("weight_mb", 1.0, "fp32 weights of the served MLP, in MB")
flags.DEFINE_list("batches", ["1", "16"], "batch sizes to measure (inside the compiled range 1..64)")
flags.DEFINE_integer("requests", 300, "timed requests per row (after 10 warm-up requests per client)")
flags.DEFINE_integer("clients", 8, "concurrent clients in the concurrent rows")
flags.DEFINE_string("json", "triton_serving.json", "where to write the results")


def summary(latencies: list, seconds: float) -> dict:
    ms = sorted(x * 1e3 for x in latencies)
    return {"requests_per_s": len(ms) / seconds, "mean_ms": statistics.fmean(ms), "p50_ms": statistics.median(ms),
            "p99_ms": ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))], "requests": len(ms)}


def timed_calls(call, count: int, clients: int = 1) -> dict:
    """`count` calls split over `clients` threads, each with its own call() (a client) warmed up by 10 untimed calls;
    the clock starts when every thread is warm."""
    latencies, lock = [], threading.Lock()
    ready = threading.Barrier(clients + 1)

    def worker(n):
        fn, mine = call(), []
        for _ in range(10):
            fn()
        ready.wait()
        for _ in range(n):
            start = time.perf_counter()
            fn()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(count // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return summary(latencies, time.perf_counter() - start)


def in_process(module, x: np.ndarray):
    def make():
        tensor = torch.from_numpy(x)
        return lambda: module(tensor).numpy()  # what a server's request path costs at least: call + to NumPy
    return make


def served(protocol: str, running, x: np.ndarray, name: str):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    lib = httpclient if protocol == "http" else grpcclient

    def make():  # one client per thread: the HTTP client (gevent) deadlocks when threads share one
        client = lib.InferenceServerClient(running.http_url if protocol == "http" else running.grpc_url)
        tensor = lib.InferInput(name, list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        return lambda: client.infer("mlp", [tensor]).as_numpy("output_0")
    return make


def run(weight_mb: float, batches: list, requests: int, clients: int) -> dict:
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    folder = tempfile.mkdtemp(prefix="trtpack-bench-triton-")
    model = models.mlp(weight_mb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = trtpack.compile(model, models.example_inputs(model), dynamic_shapes=models.dynamic_shapes(),
                                   fallback=True, cache=False)
        path = os.path.join(folder, "mlp.ep")
        trtpack.save(compiled, path)
        module = trtpack.load(path)
    repo = os.path.join(folder, "repo")
    write_repository(path, repo, "mlp")
    name = model_spec(path).inputs[0].name
    width = model[0].in_features
    rows = []
    with server.running(repo, os.path.join(folder, "server.log")) as running:
        for batch in batches:
            x = np.random.default_rng(0).standard_normal((batch, width), dtype=np.float32)
            for threads in (1, clients):
                row = {"batch": batch, "clients": threads,
                       "in_process": timed_calls(in_process(module, x), requests, threads)}
                for protocol in ("http", "grpc"):
                    row[protocol] = timed_calls(served(protocol, running, x, name), requests, threads)
                rows.append(row)
                print(_line(row), flush=True)
    return {"trtpack_version": trtpack.__version__, "torch_version": torch.__version__, "weight_mb": weight_mb,
            "width": width, "layers": len([m for m in model if isinstance(m, torch.nn.Linear)]),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "rows": rows,
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _line(row: dict) -> str:
    cells = [f"{k}: {row[k]['requests_per_s']:.0f} req/s, p50 {row[k]['p50_ms']:.2f} ms, p99 {row[k]['p99_ms']:.2f} ms"
             for k in ("in_process", "http", "grpc")]
    return f"batch {row['batch']:>3}, {row['clients']} client(s) | " + " | ".join(cells)


def main(argv):
    del argv
    results = run(FLAGS.weight_mb, [int(b) for b in FLAGS.batches], FLAGS.requests, FLAGS.clients)
    with open(FLAGS.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {os.path.abspath(FLAGS.json)}")


if __name__ == "__main__":
    app.run(main)
