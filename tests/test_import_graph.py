"""trtpack's own modules import each other without a cycle, and only one of them imports the TensorRT stand-in (a
test double): runtime/executor.py, whose test_double() is how the others reach it. Read from the sources (ast), so
imports inside functions count too."""
import ast
import os

import trtpack

PACKAGE_DIR = os.path.dirname(os.path.abspath(trtpack.__file__))
STAND_IN = "trtpack.runtime.standin"
STAND_IN_ENTRY = "trtpack.runtime.executor"
STAND_IN_CPP = "trtpack.runtime.standin_cpp"  # the C++ face's Python side: part of the test double


def modules(package_dir: str = PACKAGE_DIR) -> dict:
    """{dotted module name: path} of every .py file of the package (a package's __init__ under its own name)."""
    found, root = {}, os.path.dirname(package_dir)
    for folder, _, files in os.walk(package_dir):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(path: str, known: dict) -> set:
    """The package's modules that the file at `path` imports: `from a.b import c` counts as a.b.c when that is a
    module, else as a.b."""
    found = set()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                         for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: a relative import; trtpack spells its imports out")
    return {name for name in found if name in known}


def graph(package_dir: str = PACKAGE_DIR) -> dict:
    known = modules(package_dir)
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def cycles(edges: dict) -> list:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_the_package_has_no_import_cycle():
    edges = graph()
    assert len(edges) > 40 and "trtpack.compiler.pipeline" in edges["trtpack.compiler"]  # the walk saw the package
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_only_the_entry_point_imports_the_stand_in():
    edges = graph()
    importers = sorted(name for name, imported in edges.items() if STAND_IN in imported and name != STAND_IN_CPP)
    assert importers == [STAND_IN_ENTRY]
    assert sorted(name for name, imported in edges.items() if STAND_IN_CPP in imported) == [STAND_IN_ENTRY]


def test_the_stand_in_is_reached_only_when_asked(monkeypatch):
    from trtpack.runtime import executor, standin

    monkeypatch.delenv(standin.ENV_ACTIVE, raising=False)
    assert executor.test_double() is None
    monkeypatch.setenv(standin.ENV_ACTIVE, "1")
    assert executor.test_double() is standin


def test_backend_names_are_written_once():
    from trtpack import names
    from trtpack.compiler import backends

    assert {name: backend.module_name for name, backend in backends.BACKENDS.items()} == names.BACKEND_MODULES
    assert backends.get_backend().name == names.DEFAULT_BACKEND
    for name, path in modules().items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if name != "trtpack.names":
            assert "BACKEND_MODULES = " not in text and "DEFAULT_BACKEND = " not in text, name


def test_no_module_is_over_600_lines():
    lengths = {}
    for name, path in modules().items():
        with open(path, encoding="utf-8") as f:
            lengths[name] = sum(1 for _ in f)
    assert lengths["trtpack.compiler.support"] > 50  # the walk read the files
    assert {name: n for name, n in lengths.items() if n > 600} == {}
