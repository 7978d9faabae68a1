"""`inspect_serializability`: find what in an object cannot be pickled (Ray's tool of that name).

An object is tried with cloudpickle, as actorcore sends it. If it fails, its parts are tried in
turn, down to ``depth`` levels: a function's closure cells and the globals it uses, an
object's attributes, a container's items. The innermost parts that fail are the culprits,
each returned as a `FailTuple` (its name, the object, its parent); a part that fails while
none of its own parts does is a culprit itself. A readable tree of the search is printed to
``print_file`` (default: standard output).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import cloudpickle

__all__ = ["FailTuple", "inspect_serializability"]

_RULE_WIDTH = 64


@dataclass(frozen=True, eq=False)
class FailTuple:
    """A part that cannot be pickled: its name, itself, and the object it was found in."""

    name: str
    obj: Any = field(repr=False)
    parent: Any = field(repr=False)
    path: str = ""

    def __hash__(self) -> int:
        return id(self.obj) ^ hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FailTuple) and other.name == self.name and other.obj is self.obj

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [path={self.path}, obj={self.obj!r}, parent={self.parent!r}])"


def inspect_serializability(base_obj: Any, name: str | None = None, depth: int = 3,
                            print_file: TextIO | None = None) -> tuple[bool, set]:
    """Whether ``base_obj`` pickles, and the set of `FailTuple` parts found not to (empty if it does).

    ``name`` names it in the printout (default: its own name); ``depth`` bounds how deep its
    parts are searched. Raises ValueError for a negative depth.
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    out = print_file if print_file is not None else sys.stdout
    name = name or getattr(base_obj, "__qualname__", None) or type(base_obj).__qualname__
    title = f"Checking serializability of {base_obj!r}"
    rule = "=" * max(_RULE_WIDTH, min(len(title), 120))
    print(rule, title, rule, sep="\n", file=out)
    failures: set = set()
    _inspect(base_obj, name, depth, None, name, failures, out, level=0)
    if failures:
        print(rule, file=out)
        print("Not serializable:", file=out)
        for failure in sorted(failures, key=lambda f: f.path):
            print(f"    {failure.path}: {_short(failure.obj)}", file=out)
        print("Move these out of what is sent (create them inside the function, the actor or the task),",
              "or give their class a __reduce__.", file=out)
    else:
        print("Serializable.", file=out)
    print(rule, file=out)
    return not failures, failures


def _short(obj: Any, limit: int = 100) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _pickle_error(obj: Any) -> BaseException | None:
    try:
        cloudpickle.dumps(obj)
    except Exception as error:  # noqa: BLE001 - any failure is what is searched for
        return error
    return None


def _parts(obj: Any) -> tuple[str, list[tuple[str, Any]]]:
    """What ``obj`` is made of, to try one by one: (a description, [(name, part)])."""
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        function = obj.__func__ if inspect.ismethod(obj) else obj
        try:
            found = inspect.getclosurevars(function)
        except (TypeError, ValueError):
            return "the closure", []
        parts = list(found.nonlocals.items()) + list(found.globals.items())
        if inspect.ismethod(obj):
            parts.insert(0, ("__self__", obj.__self__))
        return "the closure (its free and global variables)", parts
    if isinstance(obj, dict):
        return "the items", [(repr(key), value) for key, value in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return "the items", [(f"[{index}]", item) for index, item in enumerate(obj)]
    if inspect.isclass(obj):
        members = [(key, value) for key, value in vars(obj).items() if not key.startswith("__")]
        return "the class attributes", members
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        return "the attributes", list(state.items())
    return "", []


def _inspect(obj: Any, name: str, depth: int, parent: Any, path: str, failures: set,
             out: TextIO, level: int) -> bool:
    """Try ``obj``; if it fails, search its parts. Returns whether it failed."""
    indent = "    " * level
    error = _pickle_error(obj)
    if error is None:
        return False
    print(f"{indent}!!! FAIL serialization: {error}", file=out)
    described, parts = _parts(obj) if depth > 0 else ("", [])
    found_inside = False
    if parts:
        print(f"{indent}Inspecting {described} of {name!r}:", file=out)
        for part_name, part in parts:
            if _pickle_error(part) is None:
                continue
            print(f"{indent}    Serializing {part_name!r} {_short(part)}...", file=out)
            found_inside |= _inspect(part, part_name, depth - 1, obj, f"{path} -> {part_name}",
                                     failures, out, level + 1)
    if not found_inside:
        if parts or level == 0 or depth == 0:
            reason = ("depth limit reached" if depth == 0 and _parts(obj)[1]
                      else "no part of it fails alone: it fails itself, or only with the others")
            print(f"{indent}    ({reason})", file=out)
        failures.add(FailTuple(name, obj, parent, path))
    return True
