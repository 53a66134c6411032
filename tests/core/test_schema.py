"""docs/engine_meta.schema.json agrees with the C++ validator on the fixtures, and changes only with a version bump."""
import copy
import hashlib
import json
import os

import jsonschema
import pytest

import trtpack
from trtpack import record

HERE = os.path.dirname(__file__)
ROOT = os.path.join(HERE, "..", "..")
FIXTURES = os.path.join(HERE, "..", "fixtures", "records")
SCHEMA_PATH = os.path.join(ROOT, "docs", "engine_meta.schema.json")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def validator():
    schema = load(SCHEMA_PATH)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["v1_0.json", "v1_0_static_tensorrt.json", "v0_1.upgraded.json", "v1_1_newer_minor.json"])
def test_current_major_fixtures_satisfy_the_schema(validator, name):
    validator.validate(load(os.path.join(FIXTURES, name)))


@pytest.mark.parametrize("name", ["v0_1.json", "v2_0_newer_major.json"])
def test_other_major_versions_do_not_satisfy_the_schema(validator, name):
    assert not validator.is_valid(load(os.path.join(FIXTURES, name)))


@pytest.mark.parametrize("edit", [
    lambda m: m.pop("plan_sha256"),
    lambda m: m.update(plan_size=-1),
    lambda m: m.update(plan_size=(16 << 30) + 1),
    lambda m: m.update(plan_sha256="ABC"),
    lambda m: m.update(backend="onnx"),
    lambda m: m.update(targets=[]),
    lambda m: m.update(targets=["86"]),
    lambda m: m.update(name="has space"),
    lambda m: m["inputs"][0].update(dtype="float64"),
    lambda m: m["inputs"][0]["shape"].append(-1),
    lambda m: m["inputs"][0]["shape"].append("S0"),
    lambda m: m["symbols"]["s0"].update(min=0),
    lambda m: m["symbols"].update(S1={"min": 1, "opt": 1, "max": 1}),
    lambda m: m.update(outputs=[]),
    lambda m: m.update(build=[]),
    lambda m: m.update(format_version=[1]),
])
def test_schema_and_core_both_reject(validator, edit):
    meta = load(os.path.join(FIXTURES, "v1_0.json"))
    edit(meta)
    assert not validator.is_valid(meta)
    with pytest.raises(trtpack.FormatError):
        record.encode_meta(meta)


def test_schema_names_the_current_version(validator):
    schema = validator.schema
    assert schema["properties"]["format"]["const"] == record.FORMAT_ID
    assert schema["properties"]["format_version"]["prefixItems"][0]["const"] == record.FORMAT_VERSION[0]
    assert set(schema["required"]) >= {"format", "format_version", "name", "backend", "backend_version", "targets",
                                       "trtpack_version", "torch_version", "plan_size", "plan_sha256", "inputs",
                                       "outputs", "symbols", "build"}
    assert schema["$defs"]["dtype"]["enum"] == list(record.DTYPES)


def test_schema_changes_only_with_a_format_version_bump():
    lock = load(os.path.join(HERE, "format_lock.json"))
    with open(SCHEMA_PATH, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert lock["format_version"] == list(record.FORMAT_VERSION) and lock["schema_sha256"] == digest, (
        "docs/engine_meta.schema.json or FORMAT_VERSION changed. Decide the bump (docs/FORMAT.md, 'Versioning'): "
        "removed/renamed/newly required field -> major + an upgrader and fixture; new optional top-level field -> "
        f"minor. Then set tests/core/format_lock.json to {{\"format_version\": {list(record.FORMAT_VERSION)}, "
        f"\"schema_sha256\": \"{digest}\"}}")
