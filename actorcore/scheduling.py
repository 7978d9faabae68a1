"""Where a task or actor runs: the scheduling strategy records and a placement group's resource names.

The records (`PlacementGroupSchedulingStrategy`, `NodeAffinitySchedulingStrategy`) are what a
program passes as ``scheduling_strategy=``; the options layer validates them and the core
acts on them, so they live here, below both (`actorcore.util.scheduling_strategies` gives
them under Ray's module name).

A committed bundle becomes resources of its node named after the group and the bundle
(docs/architecture.md, "Placement groups"): bundle ``i`` of group ``g`` holding
``{"CPU": 2}`` adds ``CPU_group_i_g: 2`` and ``CPU_group_g: 2``, plus ``bundle_group_i_g``
and ``bundle_group_g`` (`BUNDLE_UNITS` each), so a task of the group that asks for no
resource still lands on a bundle. A task of the group asks for these names instead of the
plain ones, and the Scheduler grants them like any custom resource.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BUNDLE_UNITS",
    "NodeAffinitySchedulingStrategy",
    "PlacementGroupSchedulingStrategy",
    "bundle_resources",
    "gpus_of",
    "group_of_shape",
    "group_shape",
]

#: the units of the ``bundle_group_*`` resource each committed bundle adds; every task or
#: actor of the group takes `_BUNDLE_SHARE` of it (the bundle holds up to 1000 such leases)
BUNDLE_UNITS = 1000.0
_BUNDLE_SHARE = 0.001
_MARK = "_group_"


class PlacementGroupSchedulingStrategy:
    """Run the task or actor in a placement group's reserved resources.

    ``placement_group_bundle_index``: the bundle to use (-1: any bundle of the group);
    ``placement_group_capture_child_tasks``: tasks and actors it starts run in the group too
    (unless they say otherwise).
    """

    def __init__(self, placement_group: Any, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy(placement_group={self.placement_group!r}, "
                f"placement_group_bundle_index={self.placement_group_bundle_index}, "
                f"placement_group_capture_child_tasks={self.placement_group_capture_child_tasks})")


class NodeAffinitySchedulingStrategy:
    """Run the task or actor on node ``node_id`` (its hex id). ``soft=False``: only there, and
    it fails if that node is dead or unknown; ``soft=True``: there if it can, else anywhere."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if not isinstance(node_id, str):
            raise TypeError(f"NodeAffinitySchedulingStrategy: node_id must be a str (a node's hex id), "
                            f"got {type(node_id).__name__} {node_id!r}")
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


def bundle_resources(group_id: str, index: int, bundle: dict) -> dict[str, float]:
    """The resources committed bundle `index` of group `group_id` adds to its node."""
    resources: dict[str, float] = {}
    for name, quantity in bundle.items():
        if quantity:
            resources[f"{name}{_MARK}{index}_{group_id}"] = float(quantity)
            resources[f"{name}{_MARK}{group_id}"] = float(quantity)
    resources[f"bundle{_MARK}{index}_{group_id}"] = BUNDLE_UNITS
    resources[f"bundle{_MARK}{group_id}"] = BUNDLE_UNITS
    return resources


def group_shape(shape: tuple, group_id: str, index: int) -> tuple:
    """`shape` (sorted (name, quantity) pairs) as a task in bundle `index` of the group asks
    for it (-1: any bundle); sorted as shapes are."""
    renamed: dict[str, float] = {}
    for name, quantity in shape:
        renamed[f"{name}{_MARK}{group_id}"] = quantity
        if index >= 0:
            renamed[f"{name}{_MARK}{index}_{group_id}"] = quantity
    renamed[f"bundle{_MARK}{group_id}"] = _BUNDLE_SHARE
    if index >= 0:
        renamed[f"bundle{_MARK}{index}_{group_id}"] = _BUNDLE_SHARE
    return tuple(sorted(renamed.items()))


def group_of_shape(shape) -> str | None:
    """The id of the placement group whose resources `shape` asks for, or None."""
    for name, _ in shape:
        if name.startswith("bundle" + _MARK):
            return name.rsplit("_", 1)[1]
    return None


def gpus_of(shape: dict) -> float:
    """How many GPUs a lease of `shape` (name -> quantity) holds: its "GPU", or in a placement
    group the GPUs it takes of the group's (each such lease gets devices of its own)."""
    gpus = shape.get("GPU")
    if gpus is not None:
        return gpus
    for name, quantity in shape.items():
        if name.startswith("GPU" + _MARK) and name.count("_") == 2:  # GPU_group_<group id>, any bundle
            return quantity
    return 0.0
