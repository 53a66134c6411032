"""An FX graph compiled as a method of the module whose attributes it reads (shared by runtime/branches.py and
runtime/short_path.py)."""
import types

import torch


def compile_graph(gm: torch.fx.GraphModule, graph: torch.fx.Graph):
    """`graph` compiled as a method of `gm`: attributes are read from gm on each call, so .to() and load_state_dict
    are seen; a get_attr `a.b.weight` reads `weight` from the module `a.b` kept in gm's instance dict (not
    registered: state_dict, named_modules and .to() do not see it), one lookup instead of one per level."""
    owners = {}
    for node in graph.nodes:
        if node.op != "get_attr" or "." not in node.target:
            continue
        path, leaf = node.target.rsplit(".", 1)
        if path not in owners:
            try:
                owner = gm.get_submodule(path)
            except AttributeError:  # not a module path: read as before
                continue
            owners[path] = f"_trtpack_owner_{len(owners)}"
            gm.__dict__[owners[path]] = owner
        node.target = f"{owners[path]}.{leaf}"
    compiled = torch.fx.GraphModule(gm, graph)
    return types.MethodType(type(compiled).forward, gm)


__all__ = ["compile_graph"]
