"""A submitted task or actor call, as its submitter tracks it until its returns are resolved.

Shared by the parts of the core: the object table pins its arguments and keeps finished
tasks as lineage, the task manager resolves its returns, the submitters send and retry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..object_ref import ObjectRef
from ..protocol import TaskSpec

__all__ = ["PendingTask", "has_refs", "shape_of"]


@dataclass(slots=True)
class PendingTask:
    """A task (or actor call, or actor constructor) from submission until its returns resolve."""

    spec: TaskSpec
    shape: tuple  # a task's queue key (resources, target node id or None); an actor's resources
    max_retries: int
    retry_exceptions: Any
    return_ids: list
    pinned: list  # ids of the arguments' objects pinned in the object table while it may run
    cancelled: bool = False
    arg_refs: tuple | None = None  # (args, kwargs) as submitted, refs unresolved: for lineage
    running_on: Any = None  # the task submitter's lease it runs on, while it runs
    runtime_env: str = ""  # the canonical JSON of the runtime env its worker must have ("": none)

    def may_retry(self) -> bool:
        """Whether `max_retries` allows another attempt."""
        return self.max_retries < 0 or self.spec.attempt < self.max_retries


def has_refs(spec: TaskSpec) -> bool:
    """Whether any top-level argument of `spec` is an ObjectRef (to resolve before it runs)."""
    return any(type(a) is ObjectRef for a in spec.args) or any(type(v) is ObjectRef for v in spec.kwargs.values())


def shape_of(options: dict, actor: bool = False) -> tuple:
    """The resource shape of a task's or actor's options: sorted (name, quantity) pairs.

    A task takes 1 CPU unless told otherwise; an actor 0 (as in Ray).
    """
    shape: dict[str, float] = {}
    cpus = options.get("num_cpus")
    if cpus is None:
        cpus = 0 if actor else 1
    if cpus:
        shape["CPU"] = float(cpus)
    if options.get("num_gpus"):
        shape["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        shape["memory"] = float(options["memory"])
    if options.get("accelerator_type"):  # a node with GPUs of that model has 1 of it (as in Ray)
        shape[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    for name, quantity in (options.get("resources") or {}).items():
        if quantity:
            shape[name] = float(quantity)
    return tuple(sorted(shape.items()))
