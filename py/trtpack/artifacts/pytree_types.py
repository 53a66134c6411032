"""Model-defined input/output types (dataclasses, Hugging Face ModelOutput, named tuples) in a saved program's
pytree specs, for a process that never imported the model's library.

torch records such a type by name ("transformers.modeling_outputs.BaseModelOutput") and can rebuild it only if this
process registered it, which the model's library does when it is imported. trtpack imports nothing on the file's
behalf: where the type is registered (its library is imported) the original type comes back; otherwise a
placeholder type is registered under that name while the program loads, which rebuilds:
  - a dataclass or ModelOutput as a plain dict with the same keys, in order (fields that were None included as None);
  - a named tuple as a plain tuple subclass with fields field0, field1, ... (the spec does not store field names).
A type whose recorded context is neither raises FormatError naming the type and the package to import.
"""
import collections
import contextlib
import json

from torch.utils import _pytree as pytree

from trtpack.errors import FormatError

NAMEDTUPLE = "collections.namedtuple"


def _nodes(spec):
    """Every {type, context, children_spec} node of a dumped treespec (torch's JSON, protocol 1)."""
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict) and "type" in node:
            yield node
            stack.extend(node.get("children_spec") or [])


def _package(type_name: str) -> str:
    return type_name.split(".", 1)[0]


def _dict_keys(context):
    """(keys, none keys) when the dumped context is a ModelOutput's key list or a dataclass's (fields, none fields)."""
    if isinstance(context, list) and all(isinstance(k, str) for k in context):
        return context, []
    if (isinstance(context, list) and len(context) == 2 and all(isinstance(part, list) for part in context)
            and all(isinstance(k, str) for part in context for k in part)):
        return context[0], context[1]
    return None


def _register_dict_placeholder(type_name: str, context_text: str) -> None:
    class Placeholder:  # never instantiated: only its name is registered
        pass

    Placeholder.__name__ = Placeholder.__qualname__ = type_name.rsplit(".", 1)[-1]

    def unflatten(values, context):
        keys, none_keys = context
        out = dict(zip(keys, values))
        out.update({k: None for k in none_keys})
        return out

    def from_context(text):
        parsed = _dict_keys(json.loads(text))
        if parsed is None:
            raise _cannot_rebuild(type_name)
        return parsed

    pytree.register_pytree_node(Placeholder, lambda obj: ([], None), unflatten, serialized_type_name=type_name,
                                to_dumpable_context=lambda ctx: json.dumps(ctx), from_dumpable_context=from_context)


def _register_namedtuple_placeholder(type_name: str, size: int) -> None:
    fields = [f"field{i}" for i in range(size)]
    placeholder = collections.namedtuple(type_name.rsplit(".", 1)[-1], fields)
    pytree._register_namedtuple(placeholder, serialized_type_name=type_name)


def _cannot_rebuild(type_name: str) -> FormatError:
    return FormatError(f"trtpack: this program's inputs or outputs use the type {type_name!r}, which trtpack cannot "
                       f"rebuild without its code. `import {_package(type_name)}` (the package that defines it) before "
                       "trtpack.load, and the original type is used.")


def prepare(spec_texts) -> list:
    """Registers a placeholder type for each model-defined type named in the dumped treespecs `spec_texts` that this
    process has not registered. Returns the names it registered."""
    registered = []
    for text in spec_texts:
        if not text:
            continue
        try:
            _, root = json.loads(text)
        except (ValueError, TypeError):
            continue  # not a dumped treespec: torch reports it
        for node in _nodes(root):
            type_name, context = node["type"], node.get("context")
            if type_name is None:
                continue
            if type_name == NAMEDTUPLE:
                if isinstance(context, str) and context not in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE:
                    _register_namedtuple_placeholder(context, len(node.get("children_spec") or []))
                    registered.append(context)
                continue
            if type_name in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE:
                continue
            try:
                parsed = _dict_keys(json.loads(context)) if isinstance(context, str) else None
            except ValueError:
                parsed = None
            if parsed is None:
                raise _cannot_rebuild(type_name)
            _register_dict_placeholder(type_name, context)
            registered.append(type_name)
    return registered


@contextlib.contextmanager
def placeholders(spec_texts):
    """prepare() for the duration of a load: afterwards the placeholders' names are released, so that importing the
    model's library later registers its real types without a clash. Specs already read keep working."""
    names = prepare(spec_texts)
    try:
        yield names
    finally:
        for name in names:
            cls = pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE.pop(name, None)
            pytree.SUPPORTED_SERIALIZED_TYPES.pop(cls, None)


def specs_in_archive_json(doc) -> list:
    """The in_spec/out_spec strings anywhere in an .ep's models/*.json."""
    found, stack = [], [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("in_spec", "out_spec") and isinstance(value, str):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found
