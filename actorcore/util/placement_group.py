"""`ray.util.placement_group` under Ray's names: reserve resources across nodes as a group.

`placement_group(bundles, strategy)` reserves every bundle (a dict of resources) on the nodes
its strategy allows: PACK (as few nodes as can hold them), STRICT_PACK (one node), SPREAD (as
many nodes as can), STRICT_SPREAD (one node per bundle). The reservation is atomic: all the
bundles or none (docs/architecture.md, "Placement groups"). A group that cannot be placed now
stays PENDING and is placed when the nodes allow it; `ready()` is an ObjectRef resolved then.
Tasks and actors run in a group with
``scheduling_strategy=PlacementGroupSchedulingStrategy(group, ...)``.

The group belongs to the process that created it: it is removed when that process ends
(unless ``lifetime="detached"``), and its owner reschedules the bundles of a node that dies.
"""

from __future__ import annotations

import pickle
import sys
import types
from typing import Any

from .. import runtime
from ..core.placement_groups import STRATEGIES
from ..runtime_context import current_placement

__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

_BUNDLES_EXAMPLE = ('Bundles must be a non-empty list of resource dictionaries. '
                    'For example: `[{"CPU": 1.0}, {"GPU": 1.0}]`.')


class PlacementGroupID:
    """The id of a placement group (`hex()` gives it as text)."""

    __slots__ = ("_hex",)

    def __init__(self, hex_id: str) -> None:
        self._hex = hex_id

    def hex(self) -> str:
        """The id as text."""
        return self._hex

    def binary(self) -> bytes:
        """The id as bytes."""
        return self._hex.encode()

    def is_nil(self) -> bool:
        """Whether this is the id of no group."""
        return not self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self._hex})"


class PlacementGroup:
    """A handle to a placement group: its id and bundles, and its creator's address. It can be
    passed to tasks and actors; they reach the group through its creator."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list | None = None, _owner: Any = None,
                 _name: str = "") -> None:
        self.id = id
        self._bundles = [dict(b) for b in bundle_cache or []]
        self._owner = _owner
        self._name = _name

    @staticmethod
    def empty() -> PlacementGroup:
        """The handle of no group."""
        return PlacementGroup(PlacementGroupID(""))

    @property
    def is_empty(self) -> bool:
        """Whether this is the handle of no group."""
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict]:
        """The group's bundles, in order (each a dict of resource name -> quantity)."""
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self) -> int:
        """How many bundles the group has."""
        return len(self._bundles)

    def ready(self):
        """An ObjectRef that resolves (to this group) once every bundle is reserved; `get`
        raises if the group is removed first."""
        core = runtime.require()
        return core.groups.ready_ref(self.id.hex(), self._owner, self)

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """Wait up to `timeout_seconds` for the group to be placed; whether it is."""
        core = runtime.require()
        return core.groups.wait_ready(self.id.hex(), self._owner, timeout_seconds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()}, bundles={self._bundles})"


def _check_bundles(bundles: Any) -> list[dict]:
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError(_BUNDLES_EXAMPLE + " Got empty list instead.")
    checked = []
    for bundle in bundles:
        if not isinstance(bundle, dict) or not all(
                isinstance(name, str) and isinstance(quantity, (int, float)) and not isinstance(quantity, bool)
                for name, quantity in bundle.items()):
            raise ValueError(_BUNDLES_EXAMPLE)
        # Ray accepts a negative quantity here and the group can then never be placed; actorcore
        # refuses it at once, naming it.
        negative = {name: q for name, q in bundle.items() if not q >= 0}
        if negative:
            raise ValueError(f"Bundles cannot have negative (or NaN) resource quantities: {negative} in "
                             f"bundle {bundle}. Bundles: {bundles}")
        if not any(bundle.values()):
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 values. "
                             f"Bundles: {bundles}")
        checked.append({name: float(q) for name, q in bundle.items() if q})
    return checked


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _max_cpu_fraction_per_node: float = 1.0,
                    _soft_target_node_id: str | None = None,
                    bundle_label_selector: list | None = None) -> PlacementGroup:
    """Reserve `bundles` (a list of resource dicts) under `strategy` ("PACK", "SPREAD",
    "STRICT_PACK", "STRICT_SPREAD"); returns at once with the group's handle (`ready()`
    says when it is placed). ``lifetime="detached"``: it outlives its creator."""
    checked = _check_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies are: "
                         f"{set(STRATEGIES)}.")
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or 'detached'. "
                         f"Got {lifetime!r}.")
    if not isinstance(name, str):
        raise TypeError(f"Placement group `name` must be a str, got {type(name).__name__}.")
    if bundle_label_selector:
        raise ValueError("bundle_label_selector is not supported by actorcore (nodes have no labels).")
    core = runtime.require()
    group_id = core.new_id("g")
    group = PlacementGroup(PlacementGroupID(group_id), checked, core.actor, name)
    core.groups.create(group_id, checked, strategy, name, lifetime == "detached", namespace=core.namespace,
                       handle=pickle.dumps(group) if name else None)
    return group


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: its reservations are released on every node, and the workers of the
    tasks and actors running in it are killed (as Ray does)."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group expects a PlacementGroup, got {type(placement_group).__name__}")
    core = runtime.require()
    core.groups.remove_any(placement_group.id.hex(), placement_group._owner, placement_group._name, core.namespace)


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """The record of `placement_group` (id, name, bundles, bundles_to_node_id, strategy,
    state, stats), or of every group of the cluster by id (as Ray: this process's, and every
    other process's group that has bundles reserved; a detached group only in its creator)."""
    core = runtime.require()
    if placement_group is None:
        return core.groups.table(None)
    return core.groups.table_any(placement_group.id.hex(), placement_group._owner)


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in a driver or outside any group."""
    placement = current_placement()
    return None if placement is None else placement[0]


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named `placement_group_name` in the caller's namespace, whichever process
    created it (ValueError if there is none)."""
    core = runtime.require()
    handle = core.groups.lookup(core.namespace, placement_group_name)
    if handle is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return pickle.loads(handle)


class _CallableModule(types.ModuleType):
    """This module, callable as `placement_group`: in Ray, ``ray.util.placement_group`` is the
    function (its package imports it over the submodule's name), while here the package loads
    names lazily and the import system binds the submodule to that name; callable, it serves
    as both."""

    def __call__(self, *args: Any, **kwargs: Any) -> PlacementGroup:
        return placement_group(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
