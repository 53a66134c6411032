"""A plain model as an AOTInductor .pt2: trtpack.pt2.package/load in Python, and the C++ //tools:run_pt2 and
//examples/cpp:infer (libtorch + libtorchtrt_runtime, no Python in the process) reproduce eager outputs."""
import json
import os
import re
import shutil
import subprocess
import zipfile

import pytest
import torch
from safetensors.torch import save_file
from torch.export import Dim

import trtpack
from trtpack.artifacts import pt2
from tests.support.cpp_binaries import binary, needed_libraries, run, run_pt2
from tests.support.timing import timed


class TwoInTwoOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x, y):
        return torch.relu(self.lin(x)) * y, x.sum(dim=1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TwoInTwoOut().eval()


@pytest.fixture(scope="module")
def package(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pt2") / "two_in_two_out.pt2"
    example = (torch.randn(2, 4), torch.randn(1, 3))
    timed("AOTI package (Linear 4->3, dynamic batch)", pt2.package, model, path, arg_inputs=example,
          dynamic_shapes={"x": {0: Dim("batch", min=1, max=64)}, "y": None})
    return path


def inputs(batch):
    return [torch.randn(batch, 4), torch.randn(1, 3)]


@pytest.mark.parametrize("batch", [3, 7])
def test_python_load_matches_eager(model, package, batch):
    runner = timed("AOTI load (Python)", pt2.load, package)
    x, y = inputs(batch)
    got = runner(x, y)
    want = model(x, y)
    assert len(got) == 2
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_package_is_named_and_records_its_inputs(package):
    with zipfile.ZipFile(package) as archive:
        roots = {name.split("/")[0] for name in archive.namelist()}
    assert roots == {"two_in_two_out"}, "the archive's root folder is named after the target, not the staging file"
    assert pt2.package_device_type(package) == "cpu"
    meta = pt2.load(package).get_metadata()
    specs = json.loads(meta[pt2.INPUTS_METADATA_KEY])
    assert [s["dtype"] for s in specs] == ["float32", "float32"]
    assert isinstance(specs[0]["shape"][0], str) and specs[0]["shape"][1] == 4, "batch is dynamic, features static"
    assert specs[1]["shape"] == [1, 3]
    assert meta["trtpack.version"] == trtpack.__version__
    assert not [p for p in os.listdir(package.parent) if p.endswith(".tmp")], "staging folder left behind"


def test_run_pt2_has_no_python_in_its_process():
    libs = needed_libraries(binary("tools/run_pt2"))
    assert any("libtorchtrt_runtime" in lib for lib in libs)
    assert any("libtorch_cpu" in lib for lib in libs)
    assert not [lib for lib in libs if "python" in lib.lower()], libs


@pytest.mark.parametrize("batch", [3, 7])
def test_run_pt2_matches_eager(model, package, batch, tmp_path):
    xs = inputs(batch)
    got, timing, _ = run_pt2(package, xs, tmp_path, "--iterations", "5", "--warmup", "1",
                             "--timing", str(tmp_path / "timing.json"))
    want = model(*xs)
    assert len(got) == 2
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert timing["iterations"] == 5 and timing["warmup"] == 1 and timing["device"] == "cpu"
    assert 0 < timing["min_ms"] <= timing["p50_ms"] <= timing["p90_ms"] <= timing["max_ms"]
    assert timing["min_ms"] <= timing["mean_ms"] <= timing["max_ms"]
    print(f"[timing] run_pt2 load {timing['load_ms']:.1f} ms, p50 {timing['p50_ms']:.3f} ms (batch {batch})")
    with open(tmp_path / "timing.json") as f:
        assert json.load(f) == timing


def _write(tmp_path, tensors):
    path = str(tmp_path / "in.safetensors")
    save_file(tensors, path)
    return path


BAD_INPUTS = {
    "one input missing": ({"input_0": torch.randn(2, 4)}, "takes 2 input tensor(s) but the inputs file holds 1"),
    "wrong dtype": ({"input_0": torch.randn(2, 4).double(), "input_1": torch.randn(1, 3)},
                    "input_0 has dtype float64 but the program expects float32"),
    "wrong static dim": ({"input_0": torch.randn(2, 5), "input_1": torch.randn(1, 3)},
                         "input_0 has size 5 in dimension 1 but the program expects 4"),
    "wrong rank": ({"input_0": torch.randn(2, 4, 1), "input_1": torch.randn(1, 3)}, "has 3 dimension(s)"),
    "unpositional name": ({"x": torch.randn(2, 4), "input_1": torch.randn(1, 3)}, "\"x\" is not one of input_0 .. input_1"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_run_pt2_rejects_inputs_that_do_not_fit(package, tmp_path, case):
    tensors, message = BAD_INPUTS[case]
    proc = run([binary("tools/run_pt2"), str(package), "--inputs", _write(tmp_path, tensors)])
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert "Exception raised from" not in proc.stderr, "no C++ backtrace for a user error"


def test_run_pt2_rejects_bad_files(package, tmp_path):
    good = _write(tmp_path, {"input_0": torch.randn(2, 4), "input_1": torch.randn(1, 3)})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(open(good, "rb").read()[:-3])
    cases = [
        ([str(tmp_path / "missing.pt2"), "--inputs", good], "missing.pt2: no such file"),
        ([str(package), "--inputs", str(tmp_path / "missing.safetensors")], "missing.safetensors: no such file"),
        ([str(package), "--inputs", str(truncated)], "not a valid safetensors file: tensors cover"),
        ([good, "--inputs", good], "cannot be loaded as an AOTInductor package"),
    ]
    for argv, message in cases:
        proc = run([binary("tools/run_pt2"), *argv])
        assert proc.returncode == 1 and message in proc.stderr, (argv, proc.stderr)


def test_run_pt2_usage_errors_exit_2(package):
    for argv, message in [([str(package)], "--inputs INPUTS.safetensors is required"),
                          ([str(package), "--inputs", "x", "--iterations", "0"], "--iterations takes an integer")]:
        proc = run([binary("tools/run_pt2"), *argv])
        assert proc.returncode == 2 and message in proc.stderr and "usage: run_pt2" in proc.stderr, proc.stderr
    assert run([binary("tools/run_pt2"), "--help"]).returncode == 0


def test_run_pt2_reads_relative_paths_from_the_bazel_run_directory(package, tmp_path):
    shutil.copy(package, tmp_path / "m.pt2")
    _write(tmp_path, {"input_0": torch.randn(2, 4), "input_1": torch.randn(1, 3)})
    proc = subprocess.run([binary("tools/run_pt2"), "m.pt2", "--inputs", "in.safetensors", "--outputs", "out.safetensors"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BUILD_WORKING_DIRECTORY": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.safetensors").is_file()


def test_example_cpp_consumer_runs_the_package(model, package):
    proc = run([binary("examples/cpp/infer"), str(package), "5x4", "1x3"])
    assert proc.returncode == 0, proc.stderr
    # infer feeds 0, 1/n, 2/n, ... for each input of n elements.
    xs = [torch.arange(n, dtype=torch.float32).div(n).reshape(shape) for n, shape in [(20, (5, 4)), (3, (1, 3))]]
    want = model(*xs)
    found = re.findall(r"output (\d) shape \[([\d, ]+)\] sum (\S+)", proc.stdout)
    assert len(found) == 2, proc.stdout
    for (index, shape, total), w in zip(found, want):
        assert [int(s) for s in shape.split(",")] == list(w.shape)
        assert float(total) == pytest.approx(w.sum().item(), rel=1e-5, abs=1e-6)


def test_example_cpp_consumer_reports_bad_packages(tmp_path):
    proc = run([binary("examples/cpp/infer"), str(tmp_path / "missing.pt2"), "2x4"])
    assert proc.returncode == 1 and proc.stderr.startswith("infer: error:"), proc.stderr


def test_load_rejects_what_it_cannot_run(package, tmp_path):
    with pytest.raises(trtpack.FormatError, match="no such file"):
        pt2.load(tmp_path / "missing.pt2")
    not_zip = tmp_path / "not_a_package.pt2"
    not_zip.write_bytes(b"hello")
    with pytest.raises(trtpack.FormatError, match="not an AOTInductor package"):
        pt2.load(not_zip)
    with pytest.raises(trtpack.IncompatibleEngineError, match="was built for cpu .* runs only on the device type"):
        pt2.load(package, device="cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a CUDA device")
def test_package_refuses_cuda_inputs_on_a_machine_without_cuda(model, tmp_path):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        cuda_input = torch.empty(2, 4, device="cuda")
    with pytest.raises(trtpack.IncompatibleEngineError, match="no CUDA device.*no cross compilation"):
        pt2.package(model, tmp_path / "m.pt2", arg_inputs=(cuda_input, cuda_input))
    assert not os.listdir(tmp_path)


def test_package_writes_atomically(model, tmp_path, monkeypatch):
    target = tmp_path / "m.pt2"
    target.write_bytes(b"previous package")

    def crash_mid_write(ep, package_path, inductor_configs):
        with open(package_path, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("simulated crash while compiling")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", crash_mid_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pt2.package(model, target, arg_inputs=(torch.randn(2, 4), torch.randn(1, 3)))
    assert target.read_bytes() == b"previous package"
    assert os.listdir(tmp_path) == ["m.pt2"], "no staging file left behind"


def test_package_rejects_bad_arguments(model, tmp_path):
    example = (torch.randn(2, 4), torch.randn(1, 3))
    ep = torch.export.export(model, example)
    with pytest.raises(trtpack.TrtpackError, match="only when a module is exported"):
        pt2.package(ep, tmp_path / "m.pt2", arg_inputs=example, dynamic_shapes={"x": {0: Dim("b")}})
    with pytest.raises(trtpack.TrtpackError, match="cannot package a str"):
        pt2.package("model", tmp_path / "m.pt2", arg_inputs=example)
    with pytest.raises(trtpack.TrtpackError, match="arg_inputs must be a tuple or list"):
        pt2.package(model, tmp_path / "m.pt2", arg_inputs=example[0])
    with pytest.raises(trtpack.FormatError, match="does not exist"):
        pt2.package(model, tmp_path / "no_dir" / "m.pt2", arg_inputs=example)


class DictOut(torch.nn.Module):
    def forward(self, x):
        return {"scores": torch.relu(x) * 2, "total": x.sum(dim=1)}


def test_run_pt2_names_outputs_by_the_models_keys(tmp_path):
    from safetensors.torch import load_file

    path = tmp_path / "dict_out.pt2"
    timed("AOTI package (dict outputs)", pt2.package, DictOut(), path, arg_inputs=(torch.randn(2, 4),))
    assert json.loads(pt2.load(path).get_metadata()[pt2.OUTPUTS_METADATA_KEY]) == ["scores", "total"]
    x = torch.randn(2, 4)
    in_path, out_path = _write(tmp_path, {"input_0": x}), str(tmp_path / "out.safetensors")
    proc = run([binary("tools/run_pt2"), str(path), "--inputs", in_path, "--outputs", out_path])
    assert proc.returncode == 0, proc.stderr
    got = load_file(out_path)
    assert sorted(got) == ["scores", "total"]
    torch.testing.assert_close(got["scores"], DictOut()(x)["scores"])
    torch.testing.assert_close(got["total"], DictOut()(x)["total"])


def test_positional_outputs_keep_their_positions_as_names(package):
    assert json.loads(pt2.load(package).get_metadata()[pt2.OUTPUTS_METADATA_KEY]) == ["output_0", "output_1"]


class Pair:
    """A model-defined output type registered without key paths (no flatten_with_keys_fn), as some libraries do."""

    def __init__(self, scores, total):
        self.scores, self.total = scores, total


torch.utils._pytree.register_pytree_node(
    Pair, lambda p: ([p.scores, p.total], ["scores", "total"]), lambda values, keys: Pair(*values),
    serialized_type_name="tests.aoti.test_run_pt2.Pair")


class PairOut(torch.nn.Module):
    def forward(self, x):
        return Pair(torch.relu(x), x.sum(dim=1))


def test_output_names_come_from_the_output_structure_even_without_key_paths():
    program = torch.export.export(PairOut(), (torch.randn(2, 4),), strict=False)
    assert pt2.output_names(program) == ["scores", "total"]
