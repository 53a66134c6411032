"""trtpack.record: the Python face of the C++ core, including a record made from a real TensorRT-RTX plan.

The plan is BUILT here on the CPU with tensorrt_rtx (building needs no GPU); nothing is executed.
"""
import json
import os

import pytest
import torch

import trtpack
from trtpack import record
from tests.support import records

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "records")


def fixture_text(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


@pytest.fixture
def meta():
    return json.loads(fixture_text("v1_0.json"))


def test_format_version_and_constants_come_from_core():
    assert record.FORMAT_VERSION == (1, 1)
    assert record.FORMAT_ID == "trtpack.engine"
    assert record.TARGET_BITS == {"sm75": 1, "sm80": 2, "sm86": 4, "sm89": 8, "sm120": 0x10, "sm121": 0x20}
    assert record.MAX_PLAN_SIZE == 16 << 30


def test_dict_encode_parse_decode_round_trip(meta):
    text = record.encode_meta(meta)
    assert record.decode_meta(text) == meta
    assert record.encode_meta(record.decode_meta(text)) == text
    # C++'s canonical form is exactly Python's sorted, compact json for the same record.
    assert text == json.dumps(meta, sort_keys=True, separators=(",", ":"))
    assert text == fixture_text("v1_0.json")


def test_decode_upgrades_the_0_1_fixture():
    upgraded = record.decode_meta(fixture_text("v0_1.json"))
    assert upgraded["format_version"] == [1, 0]
    assert upgraded["backend"] == "tensorrt_rtx"
    assert upgraded["inputs"][0]["dtype"] == "float32"
    assert record.encode_meta(upgraded) == fixture_text("v0_1.upgraded.json")


def test_newer_major_is_refused_naming_both_versions():
    with pytest.raises(trtpack.FormatError, match=r"format 2\.0 but this trtpack reads format 1\.x \(up to 1\.1\)") as e:
        record.decode_meta(fixture_text("v2_0_newer_major.json"))
    assert e.value.field == "format_version"


@pytest.mark.parametrize("edit, field, words", [
    (lambda m: m.pop("plan_sha256"), "plan_sha256", "missing"),
    (lambda m: m.update(plan_size="12"), "plan_size", "must be an integer"),
    (lambda m: m.update(plan_size=True), "plan_size", "must be an integer, got boolean"),
    (lambda m: m.update(plan_size=1 << 40), "plan_size", "16 GiB"),
    (lambda m: m["inputs"][0].update(dtype="torch.float32"), "inputs[0].dtype", "without \"torch.\""),
    (lambda m: m["outputs"][0]["shape"].__setitem__(2, "s9*2"), "outputs[0].shape[2]", "'s9'"),
    (lambda m: m["symbols"]["s0"].update(min=0), "symbols.s0", "1 <= min <= opt <= max"),
    (lambda m: m.update(targets=["sm86", "sm80"]), "targets[1]", "ascending"),
    (lambda m: m.update(extra_key=1), "extra_key", "unknown key"),
])
def test_errors_are_format_errors_naming_the_field(meta, edit, field, words):
    edit(meta)
    with pytest.raises(trtpack.FormatError) as e:
        record.encode_meta(meta)
    assert e.value.field == field
    assert str(e.value).startswith(field + ": ")
    assert words in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, trtpack.TrtpackError)


def test_non_json_python_values_are_format_errors(meta):
    meta["build"]["scale"] = float("nan")
    with pytest.raises(trtpack.FormatError, match="not representable as JSON"):
        record.encode_meta(meta)
    with pytest.raises(trtpack.FormatError, match="expected a dict or a JSON str"):
        record.encode_meta([meta])
    with pytest.raises(trtpack.FormatError, match="is not valid JSON") as e:
        record.decode_meta("{not json")
    assert e.value.field == "meta"


def test_parse_and_eval_dim():
    assert record.parse_dim("(s1-3)//2+1") == ("+", ("//", ("-", ("sym", "s1"), 3), 2), 1)
    assert record.parse_dim("max(s0, 2)") == ("max", ("sym", "s0"), 2)
    assert record.parse_dim("7") == 7
    assert record.eval_dim("(s1-3)//2+1", {"s1": 16}) == 7
    assert record.eval_dim("(0-7)//2", {}) == (0 - 7) // 2
    assert record.eval_dim(5, {}) == 5
    with pytest.raises(trtpack.FormatError, match=r"expected '\)'"):
        record.parse_dim("(s0")
    with pytest.raises(trtpack.FormatError, match="division by zero"):
        record.eval_dim("s0//(s0-1)", {"s0": 1})
    with pytest.raises(trtpack.FormatError, match="expected an expression str"):
        record.parse_dim(3)


@pytest.mark.parametrize("machine, usable, reason_part", [
    ({"cuda": False, "sm": None, "backends": {"tensorrt_rtx": "1.7.1.116"}}, False, "no CUDA device"),
    ({"cuda": True, "sm": "sm90", "backends": {"tensorrt_rtx": "1.7.1.116"}}, False,
     "built for sm80,sm86,sm89,sm120,sm121 with TensorRT-RTX 1.7.1.116; this machine's GPU is sm90, which "
     "TensorRT-RTX cannot run: rebuild with backend='tensorrt' or run on an RTX/Ampere GPU"),
    ({"cuda": True, "sm": "sm86", "backends": {}}, False, "pip install tensorrt-rtx-cu12==1.7.1.116"),
    ({"cuda": True, "sm": "sm86", "backends": {"tensorrt_rtx": "1.7.0.1"}}, False, "exact version"),
    ({"cuda": True, "sm": "sm89", "backends": {"tensorrt_rtx": "1.7.1.116"}}, True, "usable"),
])
def test_compatibility_verdicts(meta, machine, usable, reason_part):
    verdict = record.compatibility(meta, machine)
    assert verdict["usable"] is usable
    assert reason_part in verdict["reason"]


def test_compatibility_rejects_a_malformed_machine(meta):
    with pytest.raises(trtpack.FormatError, match="machine: expected"):
        record.compatibility(meta, {"sm": "sm86"})
    with pytest.raises(trtpack.FormatError, match="machine: expected"):
        record.compatibility(meta, {"cuda": True, "sm": 86, "backends": {}})


# --- a real TensorRT-RTX plan, built on the CPU --------------------------------------------------

def build_plan(trt, compute_capabilities=None):
    """Tiny dynamic-batch network: out0 = relu(x), x: [batch, 4], batch in 1..8."""
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network(0)
    x = network.add_input("x", trt.float32, (-1, 4))
    relu = network.add_activation(x, trt.ActivationType.RELU)
    relu.get_output(0).name = "out0"
    network.mark_output(relu.get_output(0))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (2, 4), (8, 4))
    config.add_optimization_profile(profile)
    if compute_capabilities:
        config.num_compute_capabilities = len(compute_capabilities)
        for i, cc in enumerate(compute_capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, cc), i)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "TensorRT-RTX failed to build the test network on CPU"
    return bytes(serialized)


def record_for(plan, trt, targets):
    return records.meta(plan, inputs=[("x", "float32", ["s0", 4])], outputs=[("out0", "float32", ["s0", 4])],
                        symbols={"s0": (1, 2, 8)}, name="relu_engine", backend_version=trt.__version__,
                        targets=targets, build={"optimization_level": 3})


@pytest.fixture(scope="module")
def trt():
    return pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX (tensorrt-rtx-cu12) is not installed in this venv")


@pytest.fixture(scope="module")
def real_plan(trt):
    return build_plan(trt, ["SM80", "SM86", "SM89", "SM120", "SM121"])


def test_real_plan_header_agrees_with_the_builder(trt, real_plan):
    header = record.plan_header(real_plan)
    assert header["magic"] == "vtrt"
    assert header["version"] == trt.__version__ == "1.7.1.116"
    assert header["size"] == len(real_plan)
    assert header["targets"] == ["sm80", "sm86", "sm89", "sm120", "sm121"]
    assert header["target_mask"] == 0x3e and header["unknown_target_bits"] == 0


def test_real_plan_single_target_mask(trt):
    assert record.plan_header(build_plan(trt, ["SM86"]))["targets"] == ["sm86"]


def test_real_plan_default_targets_set_an_undocumented_bit(trt):
    # Default builds of 1.7.1 set bit 0x40 besides the documented five; it is reported, not guessed.
    header = record.plan_header(build_plan(trt))
    assert header["targets"] == ["sm80", "sm86", "sm89", "sm120", "sm121"]
    assert header["unknown_target_bits"] == 0x40


def test_real_plan_record_validates_as_bytes_and_as_tensor(trt, real_plan):
    meta = record_for(real_plan, trt, record.plan_header(real_plan)["targets"])
    text = record.encode_meta(meta)
    record.check_plan(text, real_plan, verify_hash=True)
    tensor = torch.frombuffer(bytearray(real_plan), dtype=torch.uint8)
    record.check_plan(meta, tensor, verify_hash=True)
    assert tensor.numpy().tobytes() == real_plan


def tamper(plan, offset, value):
    b = bytearray(plan)
    b[offset] = value
    return bytes(b)


@pytest.mark.parametrize("how, field, words", [
    (lambda p: tamper(p, 0x19, 8), "backend_version", "record says TensorRT-RTX 1.7.1.116 but the plan header says 1.8.1.116"),
    (lambda p: tamper(p, 0x20, 0x04), "targets", "but the plan header says sm86 (mask 0x4)"),
    (lambda p: p[:-1], "plan_size", "but the plan has"),
    (lambda p: tamper(p, len(p) // 2, p[len(p) // 2] ^ 0xff), "plan_xxh3", "were changed or damaged"),
    (lambda p: tamper(p, 0, ord("x")), "plan", "magic"),
    (lambda p: tamper(p, 0x10, p[0x10] ^ 1), "plan", "header says the plan is"),
])
def test_tampered_real_plans_are_rejected_with_the_reason(trt, real_plan, how, field, words):
    meta = record_for(real_plan, trt, ["sm80", "sm86", "sm89", "sm120", "sm121"])
    with pytest.raises(trtpack.FormatError) as e:
        record.check_plan(meta, how(real_plan), verify_hash=True)
    assert e.value.field == field
    assert words in str(e.value)


def test_plan_hash_is_only_checked_when_asked(trt, real_plan):
    meta = record_for(real_plan, trt, ["sm80", "sm86", "sm89", "sm120", "sm121"])
    flipped = tamper(real_plan, len(real_plan) // 2, real_plan[len(real_plan) // 2] ^ 0xff)
    record.check_plan(meta, flipped)  # size and header still agree
    with pytest.raises(trtpack.FormatError):
        record.check_plan(meta, flipped, verify_hash=True)


def test_plan_of_the_wrong_kind_is_a_format_error(trt, real_plan):
    meta = record_for(real_plan, trt, ["sm80", "sm86", "sm89", "sm120", "sm121"])
    with pytest.raises(trtpack.FormatError, match="1-D uint8 tensor"):
        record.check_plan(meta, torch.zeros(4, dtype=torch.float32))
    with pytest.raises(trtpack.FormatError, match="expected bytes"):
        record.check_plan(meta, "not bytes")
    with pytest.raises(trtpack.FormatError, match="shorter than the 64-byte"):
        record.plan_header(b"vtrt")


def test_a_huge_integer_in_a_record_is_out_of_range_not_a_fraction():
    huge = records.meta(b"\0" * 64, inputs=[("x", "float32", [2])], outputs=[("y", "float32", [2])], symbols={})
    huge["plan_size"] = 2 ** 64
    with pytest.raises(trtpack.FormatError, match=r"plan_size: is out of range: 1\.8446744073709552e\+19 does not fit"):
        trtpack.record.decode_meta(json.dumps(huge))
