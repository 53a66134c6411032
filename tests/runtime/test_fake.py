"""Fake kernels of the trtpack ops: graphs holding engines export, save, load and re-export with dynamic shapes."""
import io

import pytest
import torch
from torch.export import Dim

import trtpack
from trtpack.runtime import shapes
from tests.support.engine_programs import EngineOnly, EngineWithFallback
from tests.support.records import make_record

# x: [batch, 3, w] -> out: [batch, 8, (w - 3) // 2 + 1], like a stride-2 conv without padding.
PLAN, META = make_record(inputs=[("x", "float32", ["s0", 3, "s1"])],
                         outputs=[("out0", "float32", ["s0", 8, "(s1-3)//2+1"])],
                         symbols={"s0": (1, 2, 32), "s1": (5, 16, 64)})
DYNAMIC = {"x": {0: Dim("batch", min=1, max=32), 2: Dim("width", min=5, max=64)}}


def _engine_node(ep):
    nodes = [n for n in ep.graph.nodes if n.target == torch.ops.trtpack.execute_engine.default]
    assert len(nodes) == 1
    return nodes[0]


def _output_shape_strs(ep):
    out = _engine_node(ep)
    getitem = next(iter(out.users))
    return [str(d) for d in getitem.meta["val"].shape]


def _ranges(ep):
    return sorted((str(k), int(v.lower), int(v.upper)) for k, v in ep.range_constraints.items())


def test_output_shape_follows_the_meta_expressions_symbolically():
    ep = torch.export.export(EngineOnly(PLAN, META), (torch.randn(4, 3, 20),), dynamic_shapes=DYNAMIC)
    x = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == "x").meta["val"]
    out = next(iter(_engine_node(ep).users)).meta["val"]
    batch, width = x.shape[0].node.expr, x.shape[2].node.expr
    assert out.shape[0].node.expr == batch and out.shape[1] == 8
    for w in (5, 6, 20, 64):
        assert out.shape[2].node.expr.subs(width, w) == (w - 3) // 2 + 1
    assert _ranges(ep) == sorted([(str(batch), 1, 32), (str(width), 5, 64)])


def test_export_save_load_and_reexport_keep_the_symbols_and_ranges():
    ep = torch.export.export(EngineOnly(PLAN, META), (torch.randn(4, 3, 20),), dynamic_shapes=DYNAMIC)
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf)
    assert _engine_node(loaded).args[2] == META
    assert torch.equal(loaded.state_dict["plan"], PLAN)
    assert _ranges(loaded) == _ranges(ep)
    assert _output_shape_strs(loaded) == _output_shape_strs(ep)

    again = torch.export.export(loaded.module(), (torch.randn(2, 3, 9),), dynamic_shapes=DYNAMIC)
    assert _ranges(again) == _ranges(ep)
    assert _output_shape_strs(again) == _output_shape_strs(ep)
    assert _engine_node(again).args[2] == META


def test_fake_outputs_are_on_the_inputs_device_with_the_meta_dtype():
    plan, meta = make_record(inputs=[("a", "float16", [2, "n"]), ("b", "int32", ["n"])],
                             outputs=[("o1", "float16", ["max(n,3)", "min(n,3)"]), ("o2", "int64", ["n%4", 7])],
                             symbols={"n": (1, 4, 16)})
    with torch._subclasses.FakeTensorMode(allow_non_fake_inputs=True):
        a = torch.empty(2, 5, dtype=torch.float16, device="meta")
        b = torch.empty(5, dtype=torch.int32, device="meta")
        o1, o2 = torch.ops.trtpack.execute_engine([a, b], plan, meta)
    assert (tuple(o1.shape), o1.dtype, o1.device.type) == ((5, 3), torch.float16, "meta")
    assert (tuple(o2.shape), o2.dtype, o2.device.type) == ((1, 7), torch.int64, "meta")


def test_wrong_input_count_or_rank_is_a_format_error_saying_what_the_engine_takes():
    with torch._subclasses.FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(2, 3, 5)
        with pytest.raises(trtpack.FormatError, match="takes 1 inputs .*got 2"):
            torch.ops.trtpack.execute_engine([x, x], PLAN, META)
        with pytest.raises(trtpack.FormatError, match="input 'x' must have 3 dims"):
            torch.ops.trtpack.execute_engine([torch.empty(2, 3)], PLAN, META)


def test_meta_is_parsed_once_per_string():
    shapes.engine_spec.cache_clear()
    with torch._subclasses.FakeTensorMode(allow_non_fake_inputs=True):
        for batch in (1, 2, 3):
            torch.ops.trtpack.execute_engine([torch.empty(batch, 3, 8)], PLAN, META)
    info = shapes.engine_spec.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_fallback_program_exports_round_trips_and_runs_the_reference_on_cpu():
    plan, meta = make_record(inputs=[("x", "float32", ["s0", 3])], outputs=[("y", "float32", ["s0", 8])],
                             symbols={"s0": (1, 4, 64)})
    model = EngineWithFallback(plan, meta, torch.nn.Linear(3, 8, bias=False))
    ep = torch.export.export(model, (torch.randn(4, 3),), dynamic_shapes={"x": {0: Dim("batch", min=1, max=64)}})
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf).module()
    x = torch.randn(7, 3)
    assert torch.ops.trtpack.engine_usable([x], plan, meta).item() is False
    torch.testing.assert_close(loaded(x), model.reference(x))


def test_an_output_symbol_no_input_dim_names_alone_is_a_format_error():
    plan, meta = make_record(inputs=[("x", "float32", ["2*n", 3])], outputs=[("y", "float32", ["n", 3])],
                             symbols={"n": (1, 2, 8)})
    with torch._subclasses.FakeTensorMode(allow_non_fake_inputs=True):
        with pytest.raises(trtpack.FormatError, match="output shape uses symbol 'n', which no input dim names"):
            torch.ops.trtpack.execute_engine([torch.empty(4, 3)], plan, meta)
