"""The real tritonserver (nvidia-pytriton's binary, Python backend) serving a compiled artifact written by
trtpack.triton, on loopback ports: outputs against eager PyTorch over HTTP and gRPC, batches across the compiled
range, 8 concurrent clients, bad requests, and an artifact that cannot run on the server's devices.

On this CPU machine the artifact's PyTorch fallback serves (KIND_CPU); no TensorRT engine runs. The server runs in
its own session and is always stopped: on leaving the fixture, on SIGTERM (a timeout's), and at a deadline.
"""
import os
import re
import signal
import threading

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import trtpack
from tests.support.serving import MAX_BATCH, mlp_artifact
from trtpack.triton import server, write_repository

DEADLINE_S = 420  # the whole module, server start included; Bazel's medium timeout is 900 s
CLIENTS = {"http": httpclient, "grpc": grpcclient}


class Deadline(BaseException):
    pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("serving"))
    model, path = mlp_artifact(folder)
    repo = os.path.join(folder, "repo")
    write_repository(path, repo, "mlp")
    engine = os.path.join(folder, "mlp.engine")  # no fallback: cannot run on this machine's CPU
    with pytest.warns(UserWarning, match="cannot run here"):
        trtpack.save(trtpack.load(path).program, engine)
    write_repository(engine, repo, "gpu_only", kind="gpu")
    _copy_with_kind(os.path.join(repo, "gpu_only"), os.path.join(repo, "cpu_forced"), "KIND_CPU")

    def stop(signum, _frame):
        raise Deadline(f"signal {signum}: stopping the server")

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGALRM)}
    signal.alarm(DEADLINE_S)
    try:
        with server.running(repo, os.path.join(folder, "server.log"),
                            extra=["--model-control-mode=explicit", "--load-model=mlp"]) as running:
            yield model, running
    finally:
        signal.alarm(0)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _copy_with_kind(source: str, target: str, kind: str) -> None:
    """A copy of a model folder whose instance group says `kind` (an operator's edit of a GPU repository)."""
    import shutil
    shutil.copytree(source, target)
    path = os.path.join(target, "config.pbtxt")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"kind: KIND_\w+", f"kind: {kind}", text).replace('name: "gpu_only"', 'name: "cpu_forced"'))


def client(protocol: str, running):
    """A new client: tritonclient's HTTP client (gevent) deadlocks when threads share one, so one per thread."""
    url = running.http_url if protocol == "http" else running.grpc_url
    return CLIENTS[protocol].InferenceServerClient(url)


def infer(c, protocol: str, x: np.ndarray, name: str = "x", datatype: str = "FP32", model: str = "mlp"):
    tensor = CLIENTS[protocol].InferInput(name, list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return c.infer(model, [tensor]).as_numpy("output_0")


def eager(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_batches_across_the_compiled_range_match_eager(served, protocol):
    model, running = served
    c = client(protocol, running)
    rng = np.random.default_rng(1)
    for batch in (1, 2, 7, MAX_BATCH):
        x = rng.standard_normal((batch, 16), dtype=np.float32)
        got = infer(c, protocol, x)
        assert got.shape == (batch, 4) and got.dtype == np.float32
        np.testing.assert_allclose(got, eager(model, x), rtol=1e-5, atol=1e-6)


def test_eight_concurrent_clients(served):
    model, running = served
    failures, results = [], []

    def work(index):
        protocol = "http" if index % 2 else "grpc"
        try:
            c = client(protocol, running)
            rng = np.random.default_rng(100 + index)
            for _ in range(6):
                x = rng.standard_normal((int(rng.integers(1, MAX_BATCH + 1)), 16), dtype=np.float32)
                np.testing.assert_allclose(infer(c, protocol, x), eager(model, x), rtol=1e-5, atol=1e-6)
                results.append(len(x))
        except BaseException as e:  # noqa: BLE001  (reported below, with the thread)
            failures.append(f"client {index} ({protocol}): {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not [t for t in threads if t.is_alive()], "a client hung"
    assert failures == [] and len(results) == 48
    stats = client("http", running).get_inference_statistics("mlp")["model_stats"][0]
    assert int(stats["inference_count"]) >= sum(results)  # every request's rows reached the model


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_get_tritons_error_and_the_server_stays_up(served, protocol):
    model, running = served
    c = client(protocol, running)
    x = np.ones((2, 16), np.float32)
    cases = [
        (x.astype(np.float64), "x", "FP64", r"input 'x' data-type is 'FP64', but model 'mlp' expects 'FP32'"),
        (x.reshape(2, 4, 4), "x", "FP32", r"unexpected shape for input 'x' for model 'mlp'. Expected \[-1,16\]"),
        (x[:, :8].copy(), "x", "FP32", r"unexpected shape for input 'x' for model 'mlp'. Expected \[-1,16\]"),
        (np.ones((MAX_BATCH + 1, 16), np.float32), "x", "FP32",
         rf"inference request batch-size must be <= {MAX_BATCH} for 'mlp'"),
        (x, "y", "FP32", r"unexpected inference input 'y' for model 'mlp'"),
    ]
    for value, name, datatype, message in cases:
        with pytest.raises(InferenceServerException, match=message):
            infer(c, protocol, value, name, datatype)
    assert c.is_server_live() and c.is_model_ready("mlp")
    np.testing.assert_allclose(infer(c, protocol, x), eager(model, x), rtol=1e-5, atol=1e-6)


def test_artifact_that_cannot_run_on_the_servers_devices_is_refused_at_load(served):
    _, running = served
    c = client("http", running)
    with pytest.raises(InferenceServerException, match="kind KIND_GPU but no GPUs are available"):
        c.load_model("gpu_only")  # Triton's own refusal: a GPU repository on a server without GPUs
    with pytest.raises(InferenceServerException, match=r"cannot run on this model instance's device \(cpu\): engine "
                       r"'trt_region_0': .*no CUDA device.*no PyTorch fallback"):
        c.load_model("cpu_forced")  # trtpack's refusal at model load, with the engine's reason
    assert not c.is_model_ready("cpu_forced") and c.is_model_ready("mlp")
    assert c.is_server_live()
