"""Save and load of compiled programs (.ep, .engine) with real TensorRT-RTX plans built on this CPU machine.

Every .ep is loaded back in a fresh process. On this machine no engine can run, so programs compiled with
fallback=True run their PyTorch reference branch; the plans are checked byte for byte instead.
"""
import functools
import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

import trtpack
from trtpack import record
from trtpack.artifacts import program as artifact
from trtpack.cli import artifact_commands
from tests.support import models, python_env

TARGETS = ["sm86"]
ATOL = RTOL = 1e-5


def batch(high=8):
    return torch.export.Dim("batch", min=1, max=high)


# name: (model class, example shape, dynamic axes, shapes to run after load)
MODELS = {
    "small_cnn": (models.SmallCNN, (2, 3, 16, 16), {0: batch()}, [(1, 3, 16, 16), (3, 3, 16, 16), (8, 3, 16, 16)]),
    "tiny_resnet": (models.TinyResNet, (2, 3, 16, 16), {0: batch()}, [(1, 3, 16, 16), (5, 3, 16, 16)]),
    "encoder_block": (models.EncoderBlock, (2, 8, 32), {0: batch(), 1: torch.export.Dim("seq", min=2, max=16)},
                      [(1, 2, 32), (3, 5, 32), (8, 16, 32)]),
    "mlp": (models.MLP, (4, 16), {0: batch(64)}, [(1, 16), (17, 16), (64, 16)]),
    "split_by_custom_op": (models.SplitByCustomOp, (2, 3, 16, 16), {0: batch()}, [(1, 3, 16, 16), (8, 3, 16, 16)]),
}

CHECK_IN_FRESH_PROCESS = """
import json, sys, hashlib, torch
from tests.support import models  # registers the custom op some programs call
import trtpack
from safetensors.torch import load_file
program = trtpack.load(sys.argv[1])
data = load_file(sys.argv[2])
diffs = []
for i in range(len([k for k in data if k.startswith("in.")])):
    got = program(data[f"in.{i}"])
    diffs.append(float((got - data[f"out.{i}"]).abs().max()))
plans = {e.name: hashlib.sha256(e.plan.numpy().tobytes()).hexdigest() for e in program.engines}
print(json.dumps({"diffs": diffs, "plans": plans}))
"""


def plan_digests(module) -> dict:
    return {e.name: hashlib.sha256(e.plan.numpy().tobytes()).hexdigest()
            for e in artifact.engines(module._trtpack_program)}


@functools.lru_cache(maxsize=None)
def compile_model(name):
    """(eager model, compiled with fallback=True), compiled once per test process."""
    cls, shape, axes, _ = MODELS[name]
    model = models.eval_model(cls)
    torch.manual_seed(1)
    return model, trtpack.compile(model, (torch.randn(shape),), dynamic_shapes=(axes,), targets=TARGETS, fallback=True)


@pytest.fixture(scope="module", params=list(MODELS))
def compiled(request):
    model, module = compile_model(request.param)
    return request.param, model, module, MODELS[request.param][3]


def test_ep_round_trip_in_a_fresh_process(compiled, tmp_path):
    name, model, module, sizes = compiled
    path = str(tmp_path / f"{name}.ep")
    trtpack.save(module, path)
    torch.manual_seed(2)
    inputs = [torch.randn(s) for s in sizes]
    with torch.no_grad():
        cases = {**{f"in.{i}": x for i, x in enumerate(inputs)}, **{f"out.{i}": model(x) for i, x in enumerate(inputs)}}
    from safetensors.torch import save_file
    save_file(cases, str(tmp_path / "cases.safetensors"))
    proc = subprocess.run([sys.executable, "-c", CHECK_IN_FRESH_PROCESS, path, str(tmp_path / "cases.safetensors")],
                          env=python_env.env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["diffs"]) == len(sizes)
    assert max(result["diffs"]) <= ATOL, result  # dynamic shapes work after load, at several sizes
    assert result["plans"] == plan_digests(module)  # the plan bytes are exactly those compiled


def test_ep_holds_plans_raw_and_weights_once(compiled, tmp_path):
    """File size vs payload: plan bytes + the PyTorch-side weights (which the fallback reference branch uses).
    Tensor data in the archive must be within 2% of that (no base64, no copy); the rest is torch's graph JSON."""
    name, model, module, _ = compiled
    path = str(tmp_path / f"{name}.ep")
    trtpack.save(module, path)
    plans = sum(e.plan.numel() for e in artifact.engines(module._trtpack_program))
    weights = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    with zipfile.ZipFile(path) as z:
        entries = z.infolist()
    tensor_bytes = sum(i.file_size for i in entries if "/data/weights/weight_" in i.filename
                       or "/data/constants/" in i.filename and not i.filename.endswith(".json"))
    structure = sum(i.file_size for i in entries) - tensor_bytes
    assert tensor_bytes <= 1.02 * (plans + weights), (tensor_bytes, plans, weights)
    assert os.path.getsize(path) <= 1.02 * (plans + weights) + structure + 64 * len(entries) + 4096
    print(f"{name}: file {os.path.getsize(path)} B = tensors {tensor_bytes} (plans {plans} + weights {weights}) "
          f"+ torch structure {structure}")


def test_engine_extraction_equals_the_plan_and_its_sidecar_validates(compiled, tmp_path):
    name, _, module, _ = compiled
    ep_path = str(tmp_path / f"{name}.ep")
    trtpack.save(module, ep_path)
    for engine in artifact.engines(module._trtpack_program):
        out = str(tmp_path / f"{engine.name}.engine")
        artifact_commands.extract(ep_path, engine.name, out)
        with open(out, "rb") as f:
            assert f.read() == engine.plan.numpy().tobytes()
        with open(out + ".json") as f:
            meta = f.read()
        assert meta == engine.meta
        record.check_plan(meta, open(out, "rb").read(), verify_hash=True)
        assert trtpack.inspect(out)["engines"][0]["plan_sha256"] == hashlib.sha256(open(out, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def no_fallback():
    model = models.eval_model(models.MLP)
    module = trtpack.compile(model, (torch.randn(4, 16),), dynamic_shapes=({0: batch(64)},), targets=TARGETS)
    return model, module


def _assert_names_targets_version_and_fix(message: str):
    assert "sm86" in message and "TensorRT-RTX 1.7.1.116" in message, message
    assert "fallback=True" in message or "run it on" in message, message


def test_without_fallback_running_here_raises_incompatible_engine_error(no_fallback, tmp_path):
    _, module = no_fallback
    with pytest.raises(trtpack.IncompatibleEngineError) as caught:
        module(torch.randn(3, 16))
    path = str(tmp_path / "mlp.ep")
    trtpack.save(module, path)
    with pytest.warns(UserWarning, match="cannot run here"):
        loaded = trtpack.load(path)
    with pytest.raises(trtpack.IncompatibleEngineError) as caught_after_load:
        loaded(torch.randn(3, 16))
    info = trtpack.inspect(path)
    verdict = info["engines"][0]
    assert not verdict["usable_here"] and not verdict["fallback"] and not info["runs_here"]
    _assert_names_targets_version_and_fix(verdict["reason"])
    for error in (caught.value, caught_after_load.value):
        assert "CUDA" in str(error), str(error)


def _rewrite_meta(program, change):
    """Returns a copy of `program` whose engine records went through change(dict) -> dict."""
    for gm in program.graph_module.modules():
        if not isinstance(gm, torch.fx.GraphModule):
            continue
        for node in gm.graph.nodes:
            if node.op == "call_function" and node.target in (artifact.EXECUTE, artifact.USABLE):
                inputs, plan, meta = node.args
                node.args = (inputs, plan, json.dumps(change(json.loads(meta))))
        gm.recompile()
    return program


def _downgrade_to_0_1(meta: dict) -> dict:
    old = {k: v for k, v in meta.items() if k not in ("backend", "build")}
    for new, previous in (("name", "engine_name"), ("backend_version", "trt_version"), ("plan_size", "plan_bytes"),
                          ("plan_sha256", "sha256"), ("targets", "compute_capabilities")):
        old[previous] = old.pop(new)
    old["compute_capabilities"] = [int(t[2:]) for t in old["compute_capabilities"]]
    for spec in old["inputs"] + old["outputs"]:
        spec["dtype"] = "torch." + spec["dtype"]
    old["format_version"] = [0, 1]
    old.pop("plan_xxh3", None)  # format 1.1's; a 0.1 record has only the SHA-256
    return old


FAKE_GPU = {"cuda": True, "sm": "sm86", "backends": {"tensorrt_rtx": "1.7.1.116"}}
# case: (how the file's records change, the machine it loads on, expected outcome, message fragments)
MATRIX = {
    "format_newer": (lambda m: {**m, "format_version": [2, 0]}, FAKE_GPU, trtpack.FormatError,
                     ["format 2.0", "1.1", "upgrade trtpack"]),
    "format_older": (_downgrade_to_0_1, FAKE_GPU, None, []),
    "backend_version": (None, {**FAKE_GPU, "backends": {"tensorrt_rtx": "1.6.1.120"}}, "warn",
                        ["1.7.1.116", "1.6.1.120"]),
    "targets": (None, {**FAKE_GPU, "sm": "sm90"}, "warn", ["sm86", "sm90"]),
    "missing_backend": (None, {**FAKE_GPU, "backends": {}}, "warn", ["not installed", "pip install tensorrt-rtx"]),
    "trtpack_minor": (lambda m: {**m, "trtpack_version": "0.0.9"}, FAKE_GPU, "skew", ["0.0.9", trtpack.__version__]),
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_version_mismatch_matrix(case, no_fallback, tmp_path, monkeypatch):
    change, machine, outcome, fragments = MATRIX[case]
    _, module = no_fallback
    with open(_saved(module, tmp_path), "rb") as f:
        program = torch.export.load(f)
    if change:
        program = _rewrite_meta(program, change)
    path = str(tmp_path / f"{case}.ep")
    _save_with_manifest(program, path)
    monkeypatch.setattr(trtpack.machine, "describe", lambda device=None: machine)
    if outcome is trtpack.FormatError:
        with pytest.raises(trtpack.FormatError) as caught:
            trtpack.load(path)
        message = str(caught.value)
    elif outcome == "warn":
        with pytest.warns(UserWarning, match="cannot run here") as caught:
            trtpack.load(path)
        message = " ".join(str(w.message) for w in caught)
        assert "calling it raises IncompatibleEngineError" in message
        assert not trtpack.inspect(path)["engines"][0]["usable_here"]
    elif outcome == "skew":
        with pytest.warns(UserWarning, match="saved by trtpack") as caught:
            trtpack.load(path)
        assert len(caught) == 1
        message = str(caught[0].message)
    else:
        loaded = trtpack.load(path)
        assert loaded.engines[0].record["format_version"] == [1, 0]
        assert trtpack.inspect(path)["engines"][0]["usable_here"]
        message = ""
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def _save_with_manifest(program, path):
    """torch.export.save with a manifest of the records as they are (trtpack.save would refuse the bad ones)."""
    metas = list(dict.fromkeys(node.args[2] for node in program.graph.nodes
                               if node.op == "call_function" and node.target in (artifact.EXECUTE, artifact.USABLE)))
    text = json.dumps({"format": "trtpack.artifact", "format_version": [1, 0],
                       "engines": [{"meta": meta, "fallback": False} for meta in metas]})
    with open(path, "wb") as f:
        torch.export.save(program, f, extra_files={"trtpack/manifest.json": text})


def _saved(module, tmp_path) -> str:
    path = str(tmp_path / "base.ep")
    if not os.path.exists(path):
        trtpack.save(module, path)
    return path


def test_a_loaded_program_saves_again_and_compiles_again(tmp_path):
    model, module = compile_model("mlp")  # the round-trip tests' compile, not a second one
    x = torch.randn(4, 16)
    trtpack.save(module, str(tmp_path / "a.ep"))
    loaded = trtpack.load(str(tmp_path / "a.ep"))
    trtpack.save(loaded, str(tmp_path / "b.ep"))
    again = trtpack.load(str(tmp_path / "b.ep"))
    assert [e.plan.numpy().tobytes() for e in again.engines] == [e.plan.numpy().tobytes() for e in loaded.engines]
    torch.testing.assert_close(again(x), model(x), atol=ATOL, rtol=RTOL)

    recompiled = trtpack.compile(loaded.program, (x,), targets=TARGETS, fallback=True)
    assert plan_digests(recompiled) == plan_digests(module)  # the engine is kept as is, not rebuilt
    seven = torch.randn(7, 16)  # the dynamic batch survives
    torch.testing.assert_close(recompiled(seven), model(seven), atol=ATOL, rtol=RTOL)
