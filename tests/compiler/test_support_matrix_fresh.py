"""The checked-in support matrix (py/trtpack/compiler/support_matrix.json) is what tools/support_matrix.py measures on
the installed torch, onnx, onnxscript, onnxruntime and TensorRT-RTX: when any of them, the generator or the list of
ops a decomposed program can hold (core ATen and the ops the ONNX exporter keeps whole) changes, regenerate it with
`./bazelw run //tools:support_matrix`."""
import json

from tools import support_matrix as generator
from trtpack.compiler import support

MATRIX = support.matrix()
REGENERATE = "stale: run ./bazelw run //tools:support_matrix and commit py/trtpack/compiler/support_matrix.json"


def test_recorded_versions_are_the_installed_ones():
    assert MATRIX["versions"] == generator.installed_versions(), REGENERATE


def test_generator_and_decomposed_op_list_are_unchanged():
    assert MATRIX["generator_sha256"] == generator.generator_hash(), REGENERATE
    assert MATRIX["decomposed_ops_sha256"] == generator.op_list_hash(generator.decomposed_ops()), REGENERATE


def test_the_partitioner_table_is_the_matrix():
    supported = {name for name, row in MATRIX["ops"].items() if row["supported"]}
    table = {support.name_of(op) for op in support.TABLE}
    assert table == {name for name in supported if support._overload(name) is not None}
    for name, row in MATRIX["ops"].items():
        assert row["supported"] or row["failure"]["stage"], f"{name}: an unsupported row must say which stage failed"
    for name, row in MATRIX["ops"].items():  # a failing pattern narrows a supported op, with the stage and reason
        for key, failure in row.get("failing_patterns", {}).items():
            assert row["supported"] and key.startswith(name + "(") and failure["stage"] and failure["message"], key
    assert {support.name_of(op) for op in support.FAILING_PATTERNS} == {
        name for name, row in MATRIX["ops"].items() if row.get("failing_patterns") and support._overload(name)}
    # conditions only narrow measured ops; they never add one
    assert all(op in support.MEASURED for op in support.CONDITIONS if op in support.TABLE)


def test_an_op_the_matrix_refused_stays_in_pytorch_with_the_measured_reason():
    refused = next((name for name, row in MATRIX["ops"].items() if not row["supported"]), None)
    assert refused is not None
    op = support._overload(refused)
    assert op not in support.TABLE
    assert support.MEASURED[op]["failure"]["stage"] in support._measured_reason(op)


def test_the_generator_still_measures_a_program():
    """The generator calls trtpack's own export and ONNX stages: when their signatures drift, every program would be
    recorded as failing at export, and a regenerated matrix would silently refuse everything."""
    name, fn, make = next(case for case in generator.extra_cases() if case[0] == "embedding")
    result = generator.measure(generator._Lambda(fn), make())
    assert result["ops"] == ["aten.embedding.default"]
    assert all(result[stage] == "ok" for stage in ("export", "onnx", "onnxruntime", "static")), result


def test_the_data_file_is_what_the_generator_writes():
    """The checked-in file is the generator's own text (one op a line), so regenerating it changes only what changed."""
    with open(support.MATRIX_PATH, encoding="utf-8") as f:
        text = f.read()
    assert text == generator.dumps(MATRIX)
    assert json.loads(text)["ops"] and len(text.splitlines()) == len(MATRIX["ops"]) + len(MATRIX) + 3
