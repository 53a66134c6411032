"""docs/engine_meta.schema.json and docs/FORMAT.md agree with the C++ field table and validator, and the format
changes only with a version bump (format_lock.py)."""
import json
import os
import re

import jsonschema
import pytest

import trtpack
from trtpack import record
from tests.core import format_lock

HERE = os.path.dirname(__file__)
ROOT = os.path.join(HERE, "..", "..")
FIXTURES = os.path.join(HERE, "..", "fixtures", "records")
SCHEMA_PATH = os.path.join(ROOT, "docs", "engine_meta.schema.json")
FORMAT_MD = os.path.join(ROOT, "docs", "FORMAT.md")
# The JSON Schema "type" of each field kind of core/record_fields.h.
SCHEMA_TYPE = {"string": "string", "integer": "integer", "version": "array", "string_list": "array",
               "dim_list": "array", "tensor_list": "array", "symbol_map": "object", "object": "object"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def validator():
    schema = load(SCHEMA_PATH)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["v1_0.json", "v1_0_static_tensorrt.json", "v0_1.upgraded.json", "v1_1.json", "v1_2_newer_minor.json"])
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
    assert schema["$defs"]["dtype"]["enum"] == list(record.DTYPES)


def schema_type(schema, node):
    """The JSON type a schema node allows, following $ref and reading const/enum values."""
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    if "type" in node:
        return node["type"]
    values = [node["const"]] if "const" in node else node["enum"]
    (kind,) = {{str: "string", int: "integer", list: "array", dict: "object"}[type(v)] for v in values}
    return kind


@pytest.mark.parametrize("where, fields", [
    (lambda s: s, record.FIELDS),
    (lambda s: s["$defs"]["tensor"], record.TENSOR_FIELDS),
    (lambda s: s["properties"]["symbols"]["additionalProperties"], record.SYMBOL_RANGE_FIELDS),
], ids=["meta", "tensor", "symbol_range"])
def test_schema_objects_are_the_field_tables(validator, where, fields):
    node = where(validator.schema)
    assert list(node["properties"]) == [f.name for f in fields]
    assert node["required"] == [f.name for f in fields if f.required]
    assert {name: schema_type(validator.schema, prop) for name, prop in node["properties"].items()} == {
        f.name: SCHEMA_TYPE[f.kind] for f in fields}


def test_schema_rejects_unknown_keys_exactly_as_the_core_does(validator):
    assert validator.schema["then"]["propertyNames"]["enum"] == [f.name for f in record.FIELDS]
    assert validator.schema["$defs"]["tensor"]["additionalProperties"] is False
    assert validator.schema["properties"]["symbols"]["additionalProperties"]["additionalProperties"] is False


def test_format_md_lists_the_field_tables():
    with open(FORMAT_MD, encoding="utf-8") as f:
        section = f.read().split("## 2. Meta fields", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\| `(\w+)` \|", section, re.M) == [f.name for f in record.FIELDS]
    assert re.findall(r"^- `(\w+)`:", section, re.M) == [f.name for f in record.TENSOR_FIELDS]
    assert re.search(r"`\{" + ", ".join(f'"{f.name}"' for f in record.SYMBOL_RANGE_FIELDS) + r"\}`", section)


def test_field_table_versions_are_consistent():
    for f in record.FIELDS + record.TENSOR_FIELDS + record.SYMBOL_RANGE_FIELDS:
        assert 0 <= f.since <= record.FORMAT_VERSION[1], f
        assert f.required or f in record.FIELDS, f"{f.name}: a nested key cannot be optional (FORMAT.md §5)"
        assert f.kind in SCHEMA_TYPE and f.doc, f
    # A key a minor version added is optional: records of older minors of the same major lack it.
    assert all(not f.required for f in record.FIELDS if f.since > 0)


def test_the_format_changes_only_with_a_version_bump():
    problem = format_lock.problem(format_lock.read(ROOT), format_lock.current(ROOT))
    assert problem is None, problem


def lock_with(edit):
    lock = {"format_version": [1, 0], "fields": format_lock.fields(), "schema_sha256": "0" * 64}
    edited = json.loads(json.dumps(lock))
    edit(edited["fields"])
    return lock, edited


@pytest.mark.parametrize("edit, level, reason", [
    (lambda f: f["meta"].append(["timing_cache", "string", False, 1]), "minor", "timing_cache added as optional"),
    (lambda f: f["meta"].append(["timing_cache", "string", True, 0]), "major", "timing_cache added as required"),
    (lambda f: f["meta"].pop(), "major", "build removed"),
    (lambda f: f["meta"][8].__setitem__(1, "string"), "major", "plan_size changed"),
    (lambda f: f["tensor"].append(["strides", "dim_list", False, 1]), "major", "tensor.strides added to a nested"),
    (lambda f: None, None, None),
])
def test_the_lock_names_the_bump_a_change_needs(edit, level, reason):
    old, new = lock_with(edit)
    got_level, reasons = format_lock.needed_bump(old["fields"], new["fields"])
    assert got_level == level
    assert (reason is None and reasons == []) or any(r.startswith(reason) for r in reasons)
    if level:
        message = format_lock.problem(old, new)
        assert f"needs a {level} bump" in message and format_lock.COMMAND in message
        new["format_version"] = [2, 0] if level == "major" else [1, 1]
        assert "is bump enough" in format_lock.problem(old, new)
        new["format_version"] = [1, 1]
        assert format_lock.is_bumped(old["format_version"], new["format_version"], level) is (level == "minor")


def test_the_lock_file_is_written_as_read():
    now = format_lock.current(ROOT)
    assert json.loads(format_lock.dumps(now)) == now
