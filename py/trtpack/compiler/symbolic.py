"""Symbolic dims of the FX graph → the engine record's dims: ints or expression strings over s0, s1, ...

The expression grammar (docs/FORMAT.md): integers, symbol names, binary + - * // %, parentheses, max(a,b), min(a,b).
"""
import functools
import re

import sympy
import torch
from torch.utils._sympy.functions import FloorDiv, Max, Min, Mod, PythonMod

from trtpack.errors import UnsupportedGraphError
from trtpack.names import dim_names

# An unbounded dynamic dim gets this optimisation-profile maximum (TensorRT needs a finite one).
# Give the Dim an explicit max to choose another. Ranges starting at 0 start at 1 (the record has no empty dims).
DEFAULT_MAX_DIM = 4096


def _is_infinite(value) -> bool:
    return value is None or not getattr(value, "is_finite", True) or str(value) in ("oo", "int_oo")


class SymbolTable:
    """The program's size symbols, renamed s0, s1, ... by first appearance in the inputs, with min/opt/max."""

    def __init__(self, program: torch.export.ExportedProgram, flat_example_inputs):
        self.names, self.ranges, self.where = {}, {}, {}
        self.given = dim_names(program)  # program symbol -> the user's Dim name, where torch recorded one
        placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
        user_inputs = [n for n in placeholders if n.name in set(program.graph_signature.user_inputs)]
        for node, example in zip(user_inputs, flat_example_inputs):
            value = node.meta.get("val")
            if not isinstance(value, torch.Tensor):
                continue
            for axis, (dim, size) in enumerate(zip(value.shape, example.shape)):
                if isinstance(dim, torch.SymInt) and isinstance(dim.node.expr, sympy.Symbol):
                    symbol = dim.node.expr
                    if symbol not in self.names:
                        self.names[symbol] = f"s{len(self.names)}"
                        self.where[self.names[symbol]] = f"{node.name} dim {axis}"
                        bounds = program.range_constraints.get(symbol)
                        low = 1 if bounds is None or _is_infinite(bounds.lower) else max(int(bounds.lower), 1)
                        high = DEFAULT_MAX_DIM if bounds is None or _is_infinite(bounds.upper) else int(bounds.upper)
                        self.ranges[symbol] = {"min": low, "opt": int(size), "max": max(high, int(size))}

    def export_dim(self, symbol):
        """The torch.export.Dim of a program symbol (the user's Dim name, else its record name; its compiled range),
        the same object each time, so two inputs sharing a symbol share one Dim."""
        dims = self.__dict__.setdefault("_dims", {})
        if symbol not in dims:
            bounds = self.ranges[symbol]
            name = self.given.get(str(symbol)) or self.names[symbol]
            dims[symbol] = torch.export.Dim(name, min=bounds["min"], max=bounds["max"])
        return dims[symbol]

    def dynamic_shapes_of(self, values) -> list:
        """A torch.export dynamic_shapes entry per value (fake tensor): a bare program symbol gets its Dim, a derived
        size (e.g. s0*16) Dim.AUTO for torch.export to work out; None for a value with only static sizes."""
        specs = []
        for value in values:
            spec = {}
            for axis, size in enumerate(getattr(value, "shape", ())):
                if isinstance(size, torch.SymInt):
                    expr = size.node.expr
                    spec[axis] = self.export_dim(expr) if expr in self.names else torch.export.Dim.AUTO
            specs.append(spec or None)
        return specs

    def describe(self) -> str:
        """e.g. 's0 (x dim 0) in [1, 8]' for each symbol."""
        return ", ".join(f"{name} ({self.where[name]}) in [{self.ranges[symbol]['min']}, {self.ranges[symbol]['max']}]"
                         for symbol, name in self.names.items())

    @property
    def ranges_by_name(self) -> dict:
        return {name: self.ranges[symbol] for symbol, name in self.names.items()}

    def dim(self, size):
        """An int, or the expression string of a symbolic size."""
        if not isinstance(size, torch.SymInt):
            return int(size)
        expr = size.node.expr
        if expr.is_Integer:
            return int(expr)
        for symbol in expr.free_symbols:
            if symbol not in self.names:
                raise UnsupportedGraphError(f"trtpack: size {expr} uses {symbol}, which is not an input size")
        return to_expression(expr, self.names)

    def symbols_of(self, dims) -> dict:
        """{'s0': {'min','opt','max'}} for every symbol used in `dims`."""
        by_name = {name: symbol for symbol, name in self.names.items()}
        used = set()
        for dim in dims:
            if isinstance(dim, str):
                used |= symbol_names(dim)
        return {name: dict(self.ranges[by_name[name]]) for name in sorted(used)}

    def evaluate(self, dim, which: str) -> int:
        """The value of a dim with every symbol at its 'min', 'opt' or 'max'."""
        if isinstance(dim, int):
            return dim
        from trtpack import record

        values = {name: self.ranges[symbol][which] for symbol, name in self.names.items()}
        return record.eval_dim(dim, values)


def symbol_names(expression: str) -> set:
    return set(re.findall(r"[a-z_][a-z0-9_]*", expression)) - {"max", "min"}


def to_expression(expr, names) -> str:
    """Writes a sympy size expression in the record grammar; anything outside it is unsupported."""
    if expr.is_Integer:
        value = int(expr)
        return str(value) if value >= 0 else f"(0-{-value})"
    if expr.is_Symbol:
        return names[expr]
    # Terms are ordered by their written text (not sympy's order, which follows the program's symbol names), so
    # the same graph always gives the same record.
    if isinstance(expr, sympy.Add):
        positive, negative = [], []
        for term in expr.args:
            coefficient, _ = term.as_coeff_Mul()
            if coefficient < 0:
                negative.append(to_expression(-term, names))
            else:
                positive.append(to_expression(term, names))
        text = "+".join(sorted(positive)) if positive else "0"
        return "(" + text + "".join("-" + term for term in sorted(negative)) + ")"
    if isinstance(expr, sympy.Mul):
        return "(" + "*".join(sorted(to_expression(arg, names) for arg in expr.args)) + ")"
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and 1 <= int(expr.exp) <= 4:
        return "(" + "*".join([to_expression(expr.base, names)] * int(expr.exp)) + ")"
    if isinstance(expr, FloorDiv):
        return f"({to_expression(expr.args[0], names)}//{to_expression(expr.args[1], names)})"
    if isinstance(expr, (Mod, PythonMod, sympy.Mod)):
        return f"({to_expression(expr.args[0], names)}%{to_expression(expr.args[1], names)})"
    if isinstance(expr, (Max, Min, sympy.Max, sympy.Min)):
        function = "max" if isinstance(expr, (Max, sympy.Max)) else "min"
        args = sorted(to_expression(arg, names) for arg in expr.args)
        text = args[0]
        for arg in args[1:]:
            text = f"{function}({text},{arg})"
        return text
    raise UnsupportedGraphError(
        f"trtpack: the size expression {expr} ({type(expr).__name__}) cannot be written in the engine record; "
        "this region stays in PyTorch")


# How many combinations of sizes drop_size_checks_that_hold evaluates per check before it keeps the check instead.
MAX_CHECKED_SIZES = 1 << 16


def _size_range(program, symbol):
    """The sizes a compiled program accepts for `symbol`, as SymbolTable gives its profile; None if not an input's."""
    bounds = program.range_constraints.get(symbol)
    if bounds is None:
        return None
    low = 1 if _is_infinite(bounds.lower) else max(int(bounds.lower), 1)
    high = DEFAULT_MAX_DIM if _is_infinite(bounds.upper) else int(bounds.upper)
    return range(low, max(high, low) + 1)


def _holds_everywhere(program, expr) -> bool:
    """True when sympy `expr` is true at every combination of sizes the program accepts (at most MAX_CHECKED_SIZES)."""
    import itertools

    symbols = sorted(expr.free_symbols, key=str)
    ranges = [_size_range(program, symbol) for symbol in symbols]
    if any(r is None for r in ranges) or functools.reduce(lambda n, r: n * len(r), ranges, 1) > MAX_CHECKED_SIZES:
        return False
    try:
        return all(bool(expr.xreplace(dict(zip(symbols, map(sympy.Integer, values))))) is True
                   for values in itertools.product(*ranges))
    except (TypeError, ValueError):  # an expression sympy cannot decide at integers: keep the check
        return False


def drop_size_checks_that_hold(program: torch.export.ExportedProgram) -> int:
    """Erases each run-time size check (aten._assert_scalar) whose condition holds at every size the program accepts
    (each input size symbol over its range; an unbounded max counts as DEFAULT_MAX_DIM, as the engines' profiles do),
    with the size arithmetic only it used. torch.export leaves such checks where its solver cannot prove a guard
    (export.py's retry); one that holds everywhere can never fail. Returns how many were erased."""
    graph, erased = program.graph, 0
    for node in [n for n in graph.nodes if n.target is torch.ops.aten._assert_scalar.default]:
        condition = node.args[0]
        value = condition.meta.get("val") if isinstance(condition, torch.fx.Node) else condition
        if not isinstance(value, torch.SymBool) or not _holds_everywhere(program, value.node.expr):
            continue
        pending = [condition]
        graph.erase_node(node)
        erased += 1
        while pending:  # the size arithmetic only this check used
            producer = pending.pop()
            if (isinstance(producer, torch.fx.Node) and producer.op == "call_function" and not producer.users
                    and isinstance(producer.meta.get("val"), (torch.SymInt, torch.SymBool, int, bool))):
                pending.extend(producer.all_input_nodes)
                graph.erase_node(producer)
    if erased:
        program.graph_module.recompile()
    return erased
