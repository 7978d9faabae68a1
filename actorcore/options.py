"""The one schema of task, actor and actor-method options, as Ray's option table has them.

`@remote`, `.options()` and an actor method's `.options()` all validate through `validate`
and merge through `resolve`; every option is declared once in `OPTIONS`, with where it
applies, what it allows and its default. `None` for any option means "the default".

Every option name Ray 2.60 accepts is either in `OPTIONS` (some accept only the values that
mean "nothing to do" here, e.g. an empty `label_selector`, and say why in their message) or
in `REFUSED` with the reason actorcore refuses it (docs/architecture.md, "Options").
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .runtime_env.spec import validate as validate_runtime_env
from .scheduling import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

__all__ = ["KINDS", "OPTIONS", "REFUSED", "Option", "options_for", "resolve", "validate"]

KINDS = ("task", "actor", "method")
_NOUNS = {"task": "remote functions", "actor": "actor classes", "method": "actor methods"}


@dataclass(frozen=True)
class Option:
    """One option: its name, the kinds it applies to, its allowed values (as shown in
    messages), its default per kind, and the check that validates (and normalises) a value."""

    name: str
    applies_to: tuple[str, ...]
    allowed: str
    defaults: Mapping[str, Any]
    check: Callable[[Any], Any] = field(repr=False, compare=False)

    def default_for(self, kind: str) -> Any:
        """The default value of this option for ``kind`` (``"task"``, ``"actor"`` or ``"method"``)."""
        return self.defaults[kind]


class _Bad(Exception):
    """Raised by a check; validate turns it into a TypeError/ValueError naming everything."""

    def __init__(self, exc_type: type[Exception], detail: str = "") -> None:
        self.exc_type = exc_type
        self.detail = detail


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(minimum: int) -> Callable[[Any], Any]:
    def check(value):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(TypeError)
        if value < minimum:
            raise _Bad(ValueError)
        return value
    return check


def _number(value: Any) -> Any:
    if not _is_number(value):
        raise _Bad(TypeError)
    if not value >= 0:  # also rejects NaN
        raise _Bad(ValueError)
    return value


def _gpus(value: Any) -> Any:
    value = _number(value)
    if value > 1 and value != int(value):  # a device is shared only by fractions of one, as in Ray
        raise _Bad(ValueError, "a GPU quantity above 1 must be a whole number")
    return value


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise _Bad(TypeError)
    return value


def _non_empty_str(value: Any) -> Any:
    if not isinstance(value, str):
        raise _Bad(TypeError)
    if not value:
        raise _Bad(ValueError)
    return value


def _choice(*allowed: str) -> Callable[[Any], Any]:
    def check(value):
        if not isinstance(value, str):
            raise _Bad(TypeError)
        if value not in allowed:
            raise _Bad(ValueError)
        return value
    return check


def _num_returns(value: Any) -> Any:
    if value in ("streaming", "dynamic"):  # for generator functions only (checked by the caller)
        return value
    return _int(0)(value)


def _backpressure(value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad(TypeError)
    if value == 0:
        raise _Bad(ValueError, "0 would never let the generator run; 1 pauses it at each item")
    return value


def _resources(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _Bad(TypeError)
    for key, quantity in value.items():
        if key in ("CPU", "GPU"):
            option = "num_cpus" if key == "CPU" else "num_gpus"
            raise _Bad(ValueError, f"use the {option} option instead of resources={{{key!r}: ...}}")
        if not isinstance(key, str) or not key:
            raise _Bad(TypeError, f"resource name {key!r} is not a non-empty str")
        if not _is_number(quantity):
            raise _Bad(TypeError, f"resource {key!r} has quantity {quantity!r}, not a number")
        if not quantity >= 0:
            raise _Bad(ValueError, f"resource {key!r} has negative quantity {quantity!r}")
    return dict(value)


def _retry_exceptions(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if not isinstance(value, (list, tuple)):
        raise _Bad(TypeError)
    for item in value:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise _Bad(TypeError, f"{item!r} is not an exception class")
    return tuple(value)


def _empty_only(kind: type, reason: str) -> Callable[[Any], Any]:
    """Accepts an empty `kind` (dict or list), the value that asks for nothing; refuses
    anything else with `reason`."""
    def check(value):
        if not isinstance(value, kind):
            raise _Bad(TypeError)
        if value:
            raise _Bad(ValueError, reason)
        return tuple(value) if isinstance(value, list) else value  # lists become tuples, as elsewhere
    return check


def _false_only(reason: str) -> Callable[[Any], Any]:
    def check(value):
        if not isinstance(value, bool):
            raise _Bad(TypeError)
        if value:
            raise _Bad(ValueError, reason)
        return value
    return check


def _concurrency_groups(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and not value:
        return {}
    if not isinstance(value, Mapping):
        raise _Bad(TypeError)
    for name, limit in value.items():
        if not isinstance(name, str) or not name:
            raise _Bad(TypeError, f"group name {name!r} is not a non-empty str")
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise _Bad(TypeError, f"group {name!r} has max concurrency {limit!r}, not an int")
        if limit < 1:
            raise _Bad(ValueError, f"group {name!r} has max concurrency {limit}, not >= 1")
    return dict(value)


def _object_store_memory_of_actor(value: Any) -> Any:
    value = _int(0)(value)
    warnings.warn("object_store_memory on an actor is deprecated (as in Ray) and reserves no "
                  "object store memory; it is ignored.", DeprecationWarning, stacklevel=4)
    return value


def _runtime_env(value: Any) -> Any:
    """A runtime env, checked and normalized (`runtime_env.spec`); {} asks for nothing."""
    try:
        return validate_runtime_env(value)
    except (TypeError, ValueError) as error:
        raise _Bad(type(error), str(error)) from None


def _tensor_transport(value: Any) -> Any:
    if not isinstance(value, str):
        raise _Bad(TypeError)
    if value.lower() != "object_store":
        raise _Bad(ValueError, "actorcore has no direct GPU tensor transport (NIXL, NCCL, GLOO): "
                               "objects always go through the object store")
    return value


def _scheduling_strategy(value: Any) -> Any:
    if isinstance(value, PlacementGroupSchedulingStrategy) and value.placement_group is None:
        return "DEFAULT"  # Ray's way to opt out of a captured group: no group, no capture
    if isinstance(value, (PlacementGroupSchedulingStrategy, NodeAffinitySchedulingStrategy)):
        return value
    if not isinstance(value, str):
        raise _Bad(TypeError)
    return _choice("DEFAULT", "SPREAD")(value)


def _placement_group(value: Any) -> Any:
    if value == "default":  # Ray's default: the caller's group if it captures child tasks
        return value
    if not (hasattr(value, "bundle_specs") and hasattr(value, "id")):
        raise _Bad(TypeError)
    return value


def _bundle_index(value: Any) -> Any:
    return _int(-1)(value)


def _opt(name, applies_to, allowed, check, default=None, **per_kind) -> Option:
    defaults = {kind: per_kind.get(kind, default) for kind in applies_to}
    return Option(name, applies_to, allowed, MappingProxyType(defaults), check)


_TA, _ALL = ("task", "actor"), ("task", "actor", "method")

OPTIONS: tuple[Option, ...] = (
    _opt("num_returns", ("task", "method"),
         "an int >= 0, or 'streaming' or 'dynamic' for a generator function", _num_returns, 1),
    _opt("_generator_backpressure_num_objects", ("task", "method"),
         "an int > 0, or -1 for no bound (a streaming generator pauses at that many unconsumed items)",
         _backpressure, -1),
    _opt("num_cpus", _TA, "a number >= 0", _number, task=1, actor=0),
    _opt("num_gpus", _TA, "a number >= 0, whole if above 1", _gpus, 0),
    _opt("memory", _TA, "a number of bytes >= 0", _number),
    _opt("accelerator_type", _TA, "a non-empty str (a GPU model, e.g. 'V100')", _non_empty_str),
    _opt("resources", _TA, "a dict of resource name (not 'CPU'/'GPU') -> number >= 0",
         _resources, MappingProxyType({})),
    _opt("max_retries", ("task",), "an int >= -1 (-1: retry forever)", _int(-1), 3),
    _opt("retry_exceptions", ("task",), "a bool or a list/tuple of exception classes",
         _retry_exceptions, False),
    _opt("name", _ALL, "a non-empty str", _non_empty_str),
    _opt("namespace", ("actor",), "a non-empty str", _non_empty_str),
    _opt("lifetime", ("actor",), "None, 'detached' or 'non_detached'",
         _choice("detached", "non_detached")),
    _opt("get_if_exists", ("actor",), "a bool", _bool, False),
    _opt("max_restarts", ("actor",), "an int >= -1 (-1: restart forever)", _int(-1), 0),
    _opt("max_task_retries", ("actor",), "an int >= -1 (-1: retry forever)", _int(-1), 0),
    _opt("max_concurrency", ("actor",),
         "an int >= 1 (default: 1 for sync actors, 1000 for async actors)", _int(1)),
    _opt("scheduling_strategy", _TA, "None, 'DEFAULT', 'SPREAD', a PlacementGroupSchedulingStrategy or "
         "a NodeAffinitySchedulingStrategy", _scheduling_strategy),
    _opt("placement_group", _TA, "'default' or a PlacementGroup", _placement_group),
    _opt("placement_group_bundle_index", _TA, "an int >= -1", _bundle_index),
    _opt("placement_group_capture_child_tasks", _TA, "a bool", _bool),
    _opt("concurrency_groups", ("actor",), "a dict of group name -> max concurrency (an int >= 1)",
         _concurrency_groups, MappingProxyType({})),
    _opt("concurrency_group", ("method",), "a non-empty str naming one of the actor's concurrency_groups",
         _non_empty_str),
    _opt("max_calls", ("task",), "an int >= 0 (0: no limit): a worker runs the function at most "
         "that many times, then exits", _int(0), 0),
    _opt("max_pending_calls", ("actor",),
         "an int >= -1 (-1: no limit): calls whose results are not ready, per handle", _int(-1), -1),
    _opt("enable_task_events", _ALL, "a bool: False keeps its tasks out of the task events and list_tasks",
         _bool, True),
    _opt("object_store_memory", ("actor",), "an int >= 0 (deprecated, as in Ray: ignored)",
         _object_store_memory_of_actor),
    _opt("label_selector", _TA, "None or {} (nodes carry no labels in actorcore)",
         _empty_only(Mapping, "nodes carry no labels in actorcore, so no node would match")),
    _opt("fallback_strategy", _TA, "None or [] (nodes carry no labels in actorcore)",
         _empty_only((list, tuple), "nodes carry no labels in actorcore, so no fallback could match")),
    _opt("_labels", _TA, "None or {} (actorcore keeps no labels on tasks and actors)",
         _empty_only(Mapping, "actorcore keeps no labels on tasks and actors")),
    _opt("runtime_env", _TA, "None or a dict of Ray's runtime env keys (env_vars, working_dir, py_modules, "
         "excludes, config)", _runtime_env),
    _opt("allow_out_of_order_execution", ("actor",),
         "a bool (accepted: allowed, not required; a sync actor runs each caller's calls in order)", _bool),
    _opt("enable_tensor_transport", ("actor",), "False or None (no GPU tensor transport in actorcore)",
         _false_only("actorcore has no direct GPU tensor transport: objects always go through "
                     "the object store")),
    _opt("tensor_transport", ("method",), "None or 'object_store' (no GPU tensor transport in actorcore)",
         _tensor_transport),
)

_BY_NAME = {option.name: option for option in OPTIONS}

#: Ray 2.60's options actorcore refuses, each with why (the message says it, not "unknown").
REFUSED: Mapping[str, str] = MappingProxyType({
    "_num_objects_per_yield": "is a private option of Ray's streaming generators that actorcore "
                              "does not build (each yield is one item)",
    "_actor_generator_backpressure_num_objects": "is not built in actorcore: bound each generator "
                                                 "method with _generator_backpressure_num_objects",
    "object_store_memory@task": "is not implemented for tasks (by Ray either; on actors it is "
                                "accepted and ignored, deprecated as in Ray)",
    "max_task_retries@method": "is set on the actor in actorcore (max_task_retries of "
                               "@remote/.options() on the class), not per method",
    "retry_exceptions@method": "is not built for actor methods in actorcore: a method that "
                               "raises is not retried",
})


def options_for(kind: str) -> tuple[Option, ...]:
    """The options that apply to `kind` ("task", "actor" or "method"), in schema order."""
    _check_kind(kind)
    return tuple(option for option in OPTIONS if kind in option.applies_to)


def validate(kind: str, options: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The validated `options` for `kind` (only the keys given; lists become tuples, dicts
    are copied). `where` ("@remote on function f", "f.options()") starts every message.

    Raises ValueError for an unknown option or one that does not apply to `kind`, TypeError
    for a value of the wrong type and ValueError for a value out of range.
    """
    _check_kind(kind)
    valid = {}
    for key, value in options.items():
        option = _BY_NAME.get(key)
        if option is None or kind not in option.applies_to:
            raise ValueError(f"{where}: {_not_applicable(kind, key, option)}")
        if value is None:
            valid[key] = None
            continue
        try:
            valid[key] = option.check(value)
        except _Bad as bad:
            detail = f" ({bad.detail})" if bad.detail else ""
            raise bad.exc_type(
                f"{where}: option {key}={value!r} is invalid{detail}; "
                f"{key} must be {option.allowed}.") from None
    return valid


def resolve(kind: str, *layers: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
    """The effective options of `kind`: defaults, then each validated layer (later wins).

    A `None` value stands for the default. Cross-option rules are checked here, on the merged
    result, since a decorator and an `.options()` call may each give half of a pair.
    """
    merged = {option.name: option.default_for(kind) for option in options_for(kind)}
    prefix = f"{where}: " if where else ""
    for layer in layers:
        for key, value in layer.items():
            if key not in merged:
                raise ValueError(prefix + _not_applicable(kind, key, _BY_NAME.get(key)))
            merged[key] = _BY_NAME[key].default_for(kind) if value is None else value
    if "resources" in merged:
        merged["resources"] = dict(merged["resources"])
    if "placement_group" in merged:
        _legacy_placement(merged, prefix)
    if kind == "actor" and merged["get_if_exists"] and merged["name"] is None:
        raise ValueError(f"{prefix}get_if_exists=True needs a name: also pass name='...' "
                         "(it returns the existing actor of that name, or creates it).")
    return merged


def _legacy_placement(merged: dict[str, Any], prefix: str) -> None:
    """Ray's older options (`placement_group`, `placement_group_bundle_index`,
    `placement_group_capture_child_tasks`) as the `scheduling_strategy` they stand for."""
    group = merged["placement_group"]
    index = merged["placement_group_bundle_index"]
    capture = merged["placement_group_capture_child_tasks"]
    if group in (None, "default"):
        if index not in (None, -1):
            raise ValueError(f"{prefix}placement_group_bundle_index={index} needs placement_group: "
                             "pass the group as well (or use PlacementGroupSchedulingStrategy).")
        return
    if merged["scheduling_strategy"] is not None:
        raise ValueError(f"{prefix}Placement groups should be specified via the scheduling_strategy option. "
                         "The placement_group option is deprecated.")
    merged["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
        group, -1 if index is None else index, capture)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}: expected one of {', '.join(KINDS)}")


def _not_applicable(kind: str, key: str, option: Option | None) -> str:
    names = [option.name for option in options_for(kind)]
    valid = f"Valid options for {_NOUNS[kind]}: {', '.join(sorted(names))}."
    if option is not None and f"{key}@{kind}" not in REFUSED:
        where = " and ".join(_NOUNS[k] for k in option.applies_to)
        return f"option {key!r} does not apply to {_NOUNS[kind]}; it applies to {where}. {valid}"
    reason = REFUSED.get(f"{key}@{kind}") or REFUSED.get(key)
    if reason is not None:
        return f"option {key!r} {reason}. {valid}"
    close = difflib.get_close_matches(str(key).lower(), names, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown option {key!r} for {_NOUNS[kind]}.{hint} {valid}"
