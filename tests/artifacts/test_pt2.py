"""A compiled program (real TensorRT-RTX plan, fallback=True) saved as an AOTInductor .pt2 on CPU runs in Python
(trtpack.load) and in C++ (//tools:run_pt2: libtorch + libtorchtrt_runtime.so, no Python in the process), and both
reproduce eager outputs at several batch sizes by taking the PyTorch reference branch (no GPU here)."""
import zipfile

import pytest
import torch

import trtpack
from tests.support import cpp_binaries, models

ATOL = RTOL = 1e-5


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = models.eval_model(models.MLP)
    module = trtpack.compile(model, (torch.randn(4, 16),),
                             dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},), targets=["sm86"],
                             fallback=True)
    path = tmp_path_factory.mktemp("pt2") / "mlp.pt2"
    trtpack.save(module, str(path))
    return model, path


def test_pt2_in_python_matches_eager(saved):
    model, path = saved
    with pytest.warns(UserWarning, match="its PyTorch fallback will run"):
        program = trtpack.load(str(path), trust_native_code=True)
    for batch in (1, 5, 64):
        x = torch.randn(batch, 16)
        torch.testing.assert_close(program(x), model(x), atol=ATOL, rtol=RTOL)


def test_pt2_in_cpp_without_python_matches_eager(saved, tmp_path):
    model, path = saved
    for batch in (3, 33):
        x = torch.randn(batch, 16)
        outputs, timing, _ = cpp_binaries.run_pt2(path, [x], tmp_path, "--iterations", "3")
        torch.testing.assert_close(outputs[0], model(x), atol=ATOL, rtol=RTOL)
        assert timing["iterations"] == 3


def test_pt2_carries_the_manifest_that_inspect_reads(saved):
    _, path = saved
    with zipfile.ZipFile(path) as z:
        assert any(n.endswith("/extra/trtpack/manifest.json") for n in z.namelist())
    info = trtpack.inspect(str(path))
    assert info["format"] == "aot_inductor" and info["fallback"] and info["runs_here"]
    assert [e["targets"] for e in info["engines"]] == [["sm86"]]


def test_pt2_loads_as_the_one_program_type(saved):
    model, path = saved
    program = trtpack.load(str(path), trust_native_code=True)
    assert isinstance(program, trtpack.LoadedProgram) and program.format == "aot_inductor"
    assert [(e.name, e.plan, e.fallback) for e in program.engines] == [("trt_region_0", None, True)]
    assert [spec["name"] for spec in program.input_specs] == ["x"]


@pytest.mark.parametrize("name", ["mlp.pt2", "mlp.ep", "mlp.engine", "mlp"])
def test_pt2_runs_no_native_code_without_the_opt_in_whatever_its_name(saved, tmp_path, name, monkeypatch):
    _, path = saved
    copy = tmp_path / name
    copy.write_bytes(path.read_bytes())
    monkeypatch.setattr(torch._inductor, "aoti_load_package",
                        lambda *a, **k: pytest.fail("the package's library was loaded"))
    with pytest.raises(trtpack.UntrustedCodeError, match="trust_native_code=True"):
        trtpack.load(str(copy))
    assert trtpack.inspect(str(copy))["format"] == "aot_inductor"  # inspect reads the manifest only
