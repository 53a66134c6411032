"""Symbolic sizes → the record's dim expressions, symbol names and profile ranges."""
import pytest
import sympy
import torch
from torch.utils._sympy.functions import FloorDiv, Max, Min, PythonMod

from trtpack import UnsupportedGraphError, record
from trtpack.compiler import symbolic

S0, S1 = sympy.symbols("s77 s27", integer=True, positive=True)
NAMES = {S0: "s0", S1: "s1"}


@pytest.mark.parametrize("expr, text, values", [
    (S0, "s0", {"s0": 5}),
    (S0 * 16, "(16*s0)", {"s0": 3}),
    (S0 - 3, "(s0-3)", {"s0": 7}),
    (FloorDiv(S0 - 3, 2) + 1, "(((s0-3)//2)+1)", {"s0": 9}),
    (S0 * S1 + 2, "((s0*s1)+2)", {"s0": 2, "s1": 5}),
    (PythonMod(S0, 4), "(s0%4)", {"s0": 10}),
    (Max(S0, S1), "max(s0,s1)", {"s0": 2, "s1": 5}),
    (Min(S0, 8), "min(8,s0)", {"s0": 12}),
    (S0 ** 2, "(s0*s0)", {"s0": 6}),
])
def test_expressions_follow_the_record_grammar_and_keep_their_value(expr, text, values):
    written = symbolic.to_expression(expr, NAMES)
    assert written == text
    record.parse_dim(written)  # the core's parser accepts it
    substitution = {S0: values.get("s0", 1), S1: values.get("s1", 1)}
    assert eval(written, {"max": max, "min": min}, dict(values)) == int(expr.subs(substitution))


def test_expressions_outside_the_grammar_are_refused():
    with pytest.raises(UnsupportedGraphError, match="cannot be written in the engine record"):
        symbolic.to_expression(sympy.sqrt(S0), NAMES)


def test_symbols_are_named_by_first_appearance_with_ranges_from_the_program():
    class Add(torch.nn.Module):
        def forward(self, x, y):
            return x.sum(1) + y

    batch = torch.export.Dim("batch", min=2, max=40)
    seq = torch.export.Dim("seq")  # unbounded
    x, y = torch.randn(3, 5), torch.randn(3)
    program = torch.export.export(Add(), (x, y), dynamic_shapes=({0: batch, 1: seq}, {0: batch}))
    table = symbolic.SymbolTable(program, [x, y])
    assert sorted(table.ranges_by_name) == ["s0", "s1"]
    assert table.ranges_by_name["s0"] == {"min": 2, "opt": 3, "max": 40}
    assert table.ranges_by_name["s1"]["max"] == symbolic.DEFAULT_MAX_DIM
    assert table.evaluate("(s0*s1)", "max") == 40 * symbolic.DEFAULT_MAX_DIM
    assert "s0 (x dim 0) in [2, 40]" in table.describe()
