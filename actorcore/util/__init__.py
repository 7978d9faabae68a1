"""`actorcore.util`: Ray's library layer (`ray.util`) under Ray's names.

Each name lives in a module of its own and loads on first use (PEP 562), as the package's
top-level names do, so `import actorcore.util` costs nothing a program does not use:

- `ActorPool` (`actor_pool.py`): a fixed set of actors fed work in turn;
- `queue.Queue` (`queue.py`): a FIFO queue held by an actor, usable from tasks and actors;
- `multiprocessing.Pool` (`multiprocessing.py`): the standard library's Pool over tasks;
- placement groups (`placement_group.py`) and their scheduling strategies
  (`scheduling_strategies.py`);
- the GPU model names of the ``accelerator_type`` option (`accelerators.py`);
- `inspect_serializability` (`check_serialize.py`); `list_named_actors` and
  `get_node_ip_address` (`names.py`).
"""

from __future__ import annotations

import importlib

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "get_current_placement_group",
    "get_node_ip_address",
    "get_placement_group",
    "inspect_serializability",
    "list_named_actors",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

_LAZY = {
    "ActorPool": "actor_pool",
    "PlacementGroup": "placement_group",
    "get_current_placement_group": "placement_group",
    "get_placement_group": "placement_group",
    "placement_group": "placement_group",
    "placement_group_table": "placement_group",
    "remove_placement_group": "placement_group",
    "inspect_serializability": "check_serialize",
    "get_node_ip_address": "names",
    "list_named_actors": "names",
}

_SUBMODULES = frozenset({
    "accelerators", "actor_pool", "check_serialize", "multiprocessing", "names", "placement_group", "queue",
    "scheduling_strategies",
})


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'actorcore.util' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
