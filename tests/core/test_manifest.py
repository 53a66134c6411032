"""docs/manifest.schema.json says what docs/FORMAT.md §9 says: manifests built here by that text validate, malformed
ones do not. (Built by hand from the spec, not by the writer, so that the writer can be checked against the spec.)"""
import copy
import json
import os

import jsonschema
import pytest

from trtpack import record

HERE = os.path.dirname(__file__)
ROOT = os.path.join(HERE, "..", "..")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def schema():
    schema = load(os.path.join(ROOT, "docs", "manifest.schema.json"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def inputs_validator(schema):
    return jsonschema.Draft202012Validator({"$ref": "#/$defs/aoti_inputs", "$defs": schema["$defs"]})


def meta_text(name):
    meta = load(os.path.join(ROOT, "tests", "fixtures", "records", "v1_0.json"))
    meta["name"] = name
    return record.encode_meta(meta)


def manifest_1_0():
    return {"format": "trtpack.artifact", "format_version": [1, 0],
            "engines": [{"meta": meta_text("trt_region_0"), "fallback": True},
                        {"meta": meta_text("trt_region_1"), "fallback": False}]}


def manifest_1_1():
    manifest = manifest_1_0()
    manifest["format_version"] = [1, 1]
    manifest["program"] = {"inputs": [{"name": "x", "dtype": "float32", "shape": ["s0", 16]},
                                      {"name": "scale", "dtype": None, "shape": None}],
                           "outputs": [{"name": "output0", "dtype": "float32", "shape": ["s0", "2*s1"]}],
                           "symbols": {"s0": [1, 64], "s1": [2, None]}}
    return manifest


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("make", [manifest_1_0, manifest_1_1])
def test_manifests_of_the_spec_validate(validator, make):
    manifest = json.loads(canonical(make()))  # as stored: canonical text
    validator.validate(manifest)
    names = [record.decode_meta(e["meta"])["name"] for e in manifest["engines"]]
    assert names == ["trt_region_0", "trt_region_1"]


def test_no_engines_and_newer_minors_validate(validator):
    manifest = manifest_1_0()
    manifest["engines"] = []
    validator.validate(manifest)
    newer = manifest_1_1()
    newer["format_version"] = [1, 2]
    newer["added_by_1_2"] = {"anything": 1}  # a newer minor may add top-level keys
    validator.validate(newer)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(format="trtpack.engine"),
    lambda m: m.update(format_version=[2, 0]),
    lambda m: m.update(format_version=[1]),
    lambda m: m.update(format_version=["1", "1"]),
    lambda m: m.pop("engines"),
    lambda m: m["engines"][0].pop("fallback"),
    lambda m: m["engines"][0].update(fallback="yes"),
    lambda m: m["engines"][0].update(meta={"name": "x"}),
    lambda m: m["engines"][0].update(plan="abc"),
    lambda m: m.update(extra_key=1),
    lambda m: m["program"].pop("outputs"),
    lambda m: m["program"].update(inputs="x"),
    lambda m: m["program"].update(inputs=["x"]),
    lambda m: m["program"].update(inputs=[m["program"]["inputs"][0]] * 2),
    lambda m: m["program"].update(inputs=[{"name": "", "dtype": None, "shape": None}]),
    lambda m: m["program"]["inputs"][0].pop("dtype"),
    lambda m: m["program"]["inputs"][0].update(shape=[-1]),
    lambda m: m["program"]["outputs"][0].update(dtype="torch.float32"),
    lambda m: m["program"].update(kwargs=[]),
    lambda m: m["program"]["symbols"].update(s2=[1]),
    lambda m: m["program"]["symbols"].update(s2=[1, "inf"]),
    lambda m: m["program"]["symbols"].update(s2=[-1, 4]),
    lambda m: m["program"]["symbols"].update(s2={"min": 1, "max": 4}),
    lambda m: m["program"]["symbols"].update(S2=[1, 4]),
])
def test_malformed_manifests_are_refused(validator, edit):
    manifest = manifest_1_1()
    edit(manifest)
    assert not validator.is_valid(manifest)


def test_program_is_since_1_1(validator):
    manifest = manifest_1_1()
    manifest["format_version"] = [1, 0]
    assert not validator.is_valid(manifest)


def test_aoti_inputs_metadata(inputs_validator):
    specs = [{"dtype": "float32", "shape": ["s0", 3, "2*s1"]}, {"dtype": "int64", "shape": []}]
    inputs_validator.validate(json.loads(json.dumps(specs, separators=(",", ":"))))
    for bad in ([{"dtype": "torch.float32", "shape": [1]}], [{"dtype": "float32"}], [{"dtype": "float32", "shape": [-1]}],
                [{"dtype": "float32", "shape": [1.5]}], [{"dtype": "float32", "shape": [1], "name": "x"}],
                {"dtype": "float32", "shape": [1]}):
        assert not inputs_validator.is_valid(copy.deepcopy(bad)), bad
