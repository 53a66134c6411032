"""Names torch accepts that generated code cannot use: a module, parameter or buffer named `block1-0`, `class` or
`my weight` exports fine, but torch's own `.module()` writes `self.class.weight` (a SyntaxError) and trtpack's region
programs turn names into placeholders (`w_block1-0_weight`). Every such name is made an identifier once, on the
program, before anything generates code from it; the rest of the compiler sees only safe names.

`identifier(text)` is the one rule: characters outside [A-Za-z0-9_] become `_`, a leading digit or a Python keyword
gets a `_`. State names (fully qualified, dotted) keep their dots and each part is made safe; a purely numeric part
(`layers.0`, as nn.Sequential names children) stays, since torch reaches it with getattr. A part that would then
clash with a sibling gets `_1`, `_2`, ... so names stay unique.
"""
import dataclasses
import keyword
import re

import torch
from torch.export.graph_signature import ExportGraphSignature

_NOT_IDENTIFIER = re.compile(r"\W", re.ASCII)


def identifier(text: str) -> str:
    """`text` as a Python identifier that is not a keyword: `block1-0` -> `block1_0`, `0a` -> `_0a`, `class` ->
    `class_`."""
    name = _NOT_IDENTIFIER.sub("_", text) or "_"
    if name[0].isdigit():
        name = "_" + name
    return name + "_" if keyword.iskeyword(name) else name


def _safe_part(part: str) -> bool:
    return part.isdigit() or (part.isidentifier() and part.isascii() and not keyword.iskeyword(part))


def renamed_state(fqns) -> dict:
    """{fqn: safe fqn} for each dotted name in `fqns` with a part generated code cannot use; parts are renamed per
    parent module, consistently (a module's new name is the same for all its parameters) and uniquely among its
    siblings (names already safe keep theirs)."""
    children = {}  # parent path (tuple of original parts) -> ordered original child parts
    for fqn in fqns:
        parts = tuple(fqn.split("."))
        for depth in range(len(parts)):
            children.setdefault(parts[:depth], {}).setdefault(parts[depth], None)
    new_part = {}  # (parent path, original part) -> safe part
    for parent, names in children.items():
        taken = {name for name in names if _safe_part(name)}
        for name in names:
            if _safe_part(name):
                new_part[(parent, name)] = name
                continue
            base = candidate = identifier(name)
            suffix = 0
            while candidate in taken:
                suffix += 1
                candidate = f"{base}_{suffix}"
            taken.add(candidate)
            new_part[(parent, name)] = candidate
    mapping = {}
    for fqn in fqns:
        parts = tuple(fqn.split("."))
        safe = ".".join(new_part[(parts[:depth], part)] for depth, part in enumerate(parts))
        if safe != fqn:
            mapping[fqn] = safe
    return mapping


def with_safe_state_names(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """`program` itself when every parameter, buffer and constant name is safe for generated code, else a new
    ExportedProgram (same graph, no trace) whose state names are renamed by `renamed_state`."""
    signature = program.graph_signature
    modules = [entry.fqn for entry in program.module_call_graph if entry.fqn]
    fqns = list(dict.fromkeys([*program.state_dict, *program.constants, *modules,
                               *(s.target for s in signature.input_specs if s.target),
                               *(s.target for s in signature.output_specs if s.target)]))
    mapping = renamed_state(fqns)  # one mapping: a submodule entry and its weights get the same new path
    if not mapping:
        return program

    def rename(spec):
        return dataclasses.replace(spec, target=mapping.get(spec.target, spec.target)) if spec.target else spec

    def renamed_dict(values):
        return {mapping.get(name, name): value for name, value in values.items()}

    return torch.export.ExportedProgram(
        root=program.graph_module, graph=program.graph,
        graph_signature=ExportGraphSignature([rename(s) for s in signature.input_specs],
                                             [rename(s) for s in signature.output_specs]),
        state_dict=renamed_dict(program.state_dict), range_constraints=program.range_constraints,
        module_call_graph=[dataclasses.replace(entry, fqn=mapping.get(entry.fqn, entry.fqn))
                           for entry in program.module_call_graph],
        example_inputs=program.example_inputs, constants=renamed_dict(program.constants),
        verifiers=getattr(program, "verifiers", None))



def placeholder(graph: torch.fx.Graph, text: str) -> torch.fx.Node:
    """A placeholder named after `text`, made an identifier and unique in `graph`. FX's generated forward takes a
    placeholder's target as its argument name, and FX makes only the node's name unique: two weights whose names
    meet after flattening (`a.b_c`, `a_b.c`) would otherwise be one argument twice."""
    node = graph.placeholder(identifier(text))
    node.target = node.name
    return node
