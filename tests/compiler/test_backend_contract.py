"""Contract tests of the backend interface against a FAKE TensorRT module (tests/support/fake_tensorrt_builder.py).

For `tensorrt` (full TensorRT) these are the only tests: that backend is UNVERIFIED against the real module.
`tensorrt_rtx` also builds real plans in test_models.py and test_support_matrix.py."""
import sys

import pytest
import torch

from tests.support import fake_tensorrt_builder as fake_tensorrt
from trtpack import IncompatibleEngineError, UnsupportedGraphError
from trtpack.compiler import backends, build

PROFILE = {"x": ((1, 3), (4, 3), (16, 3))}


@pytest.fixture
def fake(monkeypatch):
    def install(name, **kwargs):
        module = fake_tensorrt.make(name, **kwargs)
        monkeypatch.setitem(sys.modules, name, module)
        return module
    return install


@pytest.mark.parametrize("name, flags", [("tensorrt_rtx", 0), ("tensorrt", 1 << 5)])
def test_both_backends_parse_profile_and_build_through_one_interface(fake, name, flags):
    trt = fake(name)
    plan = build.build_plan(b"onnx bytes", PROFILE, backends.get_backend(name), targets=["sm80", "sm86"])
    assert ("create_network", flags) in trt.calls  # strongly typed: precision comes from the ONNX dtypes
    assert ("parse", len(b"onnx bytes")) in trt.calls
    assert ("set_shape", "x", (1, 3), (4, 3), (16, 3)) in trt.calls
    assert ("add_optimization_profile",) in trt.calls
    assert plan.targets == ["sm80", "sm86"] and plan.backend_version == trt.__version__
    assert plan.input_names == ["x"] and plan.output_names == ["out0"]


def test_rtx_sets_each_compute_capability_and_checks_the_plan_header(fake):
    trt = fake("tensorrt_rtx")
    build.build_plan(b"m", PROFILE, backends.get_backend("tensorrt_rtx"), targets=["sm86", "sm120"])
    assert [c for c in trt.calls if c[0] == "set_compute_capability"] == [
        ("set_compute_capability", "SM86", 0), ("set_compute_capability", "SM120", 1)]
    assert ("build", 2, None) in trt.calls


def test_rtx_default_targets_are_read_back_from_the_plan(fake):
    fake("tensorrt_rtx", default_targets=("SM80", "SM89"))
    plan = build.build_plan(b"m", PROFILE, backends.get_backend("tensorrt_rtx"))
    assert plan.targets == ["sm80", "sm89"]


def test_rtx_refuses_a_plan_built_for_other_targets(fake, monkeypatch):
    fake("tensorrt_rtx")
    backend = backends.get_backend("tensorrt_rtx")
    with pytest.raises(IncompatibleEngineError, match="not the requested"):
        backend.plan_targets(fake_tensorrt.rtx_plan(["SM80"]), ["sm86"])


def test_rtx_unknown_target_lists_the_valid_ones(fake):
    fake("tensorrt_rtx")
    with pytest.raises(UnsupportedGraphError, match="choose from sm120, sm121, sm75, sm80, sm86, sm89"):
        build.build_plan(b"m", PROFILE, backends.get_backend("tensorrt_rtx"), targets=["sm90"])


def test_full_tensorrt_builds_portable_plans_with_hardware_compatibility(fake):
    trt = fake("tensorrt")
    build.build_plan(b"m", PROFILE, backends.get_backend("tensorrt"), targets=["sm80", "sm90"])
    assert ("build", 0, trt.HardwareCompatibilityLevel.AMPERE_PLUS) in trt.calls
    assert not [c for c in trt.calls if c[0] == "set_compute_capability"]


def test_full_tensorrt_refuses_pre_ampere_targets_and_default_targets_without_a_gpu(fake):
    fake("tensorrt")
    backend = backends.get_backend("tensorrt")
    with pytest.raises(UnsupportedGraphError, match="sm80"):
        build.build_plan(b"m", PROFILE, backend, targets=["sm75"])
    if not torch.cuda.is_available():
        with pytest.raises(IncompatibleEngineError, match="no CUDA device"):
            build.build_plan(b"m", PROFILE, backend)


@pytest.mark.parametrize("name", ["tensorrt_rtx", "tensorrt"])
def test_parser_errors_become_unsupported_graph_error_with_the_messages(fake, name):
    fake(name, parse_errors=["node Foo: unsupported operator Bar", "node Baz: bad attribute"])
    with pytest.raises(UnsupportedGraphError, match="(?s)rejected.*unsupported operator Bar.*bad attribute"):
        build.build_plan(b"m", PROFILE, backends.get_backend(name), targets=["sm86"])


def test_missing_backend_module_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    with pytest.raises(IncompatibleEngineError, match="pip install tensorrt"):
        backends.get_backend("tensorrt").load()


def test_unknown_backend_name():
    with pytest.raises(UnsupportedGraphError, match="choose one of tensorrt, tensorrt_rtx"):
        backends.get_backend("onnxruntime")
