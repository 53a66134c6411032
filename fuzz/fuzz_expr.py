"""Fuzz target: the grammars of strings torch would evaluate (ep_check: sympify'd expressions, exec'd guards) and
the record's dim expressions (core: parse_dim, eval_dim).

The rule: every input ends in acceptance or a TrtpackError, quickly (libFuzzer's -timeout flags a slow input).
An expression the grammar accepts is then sympify'd exactly as torch's deserializer does, and a dim expression the
core accepts is evaluated with symbols at 1 and at 2**62, so slow evaluation is caught too.
"""
import os
import sys

import atheris
import sympy  # noqa: F401  (imported before instrumentation)
import torch
import torch.utils._sympy.functions  # noqa: F401  (torch.utils does not import it)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import main, trtpack_or_error
with atheris.instrument_imports(include=["trtpack.artifacts.ep_check", "trtpack.record"]):
    from trtpack import record
    from trtpack.artifacts import ep_check
from trtpack.errors import TrtpackError

LOCALS = {name: getattr(torch.utils._sympy.functions, name) for name in
          ("FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt",
           "CeilDiv", "IntTrueDiv", "FloatTrueDiv", "ToFloat", "TruncToInt", "RoundToInt", "Identity",
           "IsNonOverlappingAndDenseIndicator") if hasattr(torch.utils._sympy.functions, name)}


def _sympify(text: str) -> None:
    try:
        sympy.sympify(text, locals=dict(LOCALS))
    except Exception:  # noqa: BLE001  (torch's load fails; trtpack turns that into FormatError)
        pass


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for kind in ("expr", "guard"):
        try:
            ep_check.check_grammar(text, kind)
        except TrtpackError:
            continue
        if kind == "expr":
            _sympify(text)
    symbols = set()
    try:
        symbols = set(_symbols(record.parse_dim(text)))
    except TrtpackError:
        return
    for value in (1, 1 << 62):
        trtpack_or_error(record.eval_dim, text, {name: value for name in symbols})


def _symbols(ast):
    if isinstance(ast, tuple):
        if ast[0] == "sym":
            yield ast[1]
        else:
            for arg in ast[1:]:
                yield from _symbols(arg)


if __name__ == "__main__":
    main(test_one_input)
