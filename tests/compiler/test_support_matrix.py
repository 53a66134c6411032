"""Every op in trtpack's support table, converted for real on CPU: torch.export → ONNX → onnxruntime equals torch
(within onnx_export.VERIFY_TOLERANCE: float32 atol 1e-4 + rtol 1e-3) → TensorRT-RTX parses and builds a plan."""
import collections

import pytest
import torch

from tests.support.op_cases import CASES
from trtpack import record
from trtpack.compiler import build_single_engine, onnx_export, support
from trtpack.compiler.export import export_program


def _program(case):
    torch.manual_seed(0)
    return export_program(case.make().eval(), case.inputs(), dynamic_shapes=case.dynamic_shapes), case.inputs()


def test_the_measured_table_takes_every_node_of_the_model_shaped_cases():
    """The matrix is measured on OpInfo samples; these cases are shaped like models (weights as constants, batch
    dims, attention masks) and all build below, so the table must not refuse any of their nodes."""
    refused = collections.Counter()
    for case in CASES:
        program, _ = _program(case)
        for node in program.module().graph.nodes:
            if support.is_compute_node(node) and support.unsupported_reason(node):
                refused[f"{node.target} ({case.id}): {support.unsupported_reason(node)}"] += 1
    assert not refused, f"the support table refuses nodes that convert and build: {sorted(refused)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_converts_and_builds(case):
    program, inputs = _program(case)
    engine = build_single_engine(program, inputs, targets=["sm86"], verify=True)
    atol, _ = onnx_export.VERIFY_TOLERANCE[torch.float32]
    assert engine.verification.max_abs_error <= atol * 100  # verify already enforced atol + rtol*|x| per element
    assert record.plan_header(engine.plan)["targets"] == ["sm86"]
    meta = record.decode_meta(engine.meta)
    assert meta["plan_size"] == len(engine.plan)
    if case.dims:
        assert meta["inputs"][0]["shape"][0] == "s0" and meta["symbols"]["s0"]["max"] == 16
