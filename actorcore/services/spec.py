"""The service spec of ``actorcore supervise SPEC.toml``: parse it, validate it, describe it as data.

Parsing and validation only: nothing here starts an actor or imports a user's class (that is
:func:`resolve_class`, called when the services are about to start). The whole file is checked
before anything starts; the first problem raises :class:`SpecError`, whose message names the
file, the service (or group) and the field, and says what is allowed.

The TOML shape::

    [supervisor]                  # the root of the tree; optional, these are the defaults
    strategy = "one_for_one"      # one_for_all | rest_for_one
    max_restarts = 3              # an int >= 0, or -1 for unlimited
    period = 5.0                  # seconds > 0 (inf: count restarts forever)

    [services.counter]            # a service: it has a `class`
    class = "examples.services.counter:Counter"   # module:Class, importable where workers run
    args = []
    kwargs = { start = 0 }
    replicas = 1                  # >= 1; with more than 1 the actors are counter-0, counter-1, ...
    restart = "permanent"         # transient | temporary
    resources = { CPU = 1 }       # name -> number >= 0; CPU becomes num_cpus
    checkpoint_interval = 5.0     # seconds >= 0; 0 = only on graceful stop
    backoff = { min = 0.1, max = 10.0 }   # seconds; absent = restart at once

    [services.storage]            # a group (a nested supervisor): it has `services`
    strategy = "rest_for_one"     # strategy, max_restarts, period: as in [supervisor]
    max_restarts = 3
    period = 10

    [services.storage.services.kv]    # a member of the group (groups nest the same way)
    class = "examples.services.kv:KV"

A group is an entry of a ``services`` table like a service, so that services and groups share
one ordered table per level: the start order is the order in the file (TOML tables keep
insertion order), which ``rest_for_one`` and ``one_for_all`` depend on. Service and group
names are unique across the whole tree (they name actors and appear in logs), and so are the
actor names of replicas (a service ``counter`` with 2 replicas takes ``counter-0`` and
``counter-1``); ``root`` is the name of the top supervisor.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTARTS = ("permanent", "transient", "temporary")
# Group defaults: supervisor.Supervisor's default intensity (3 restarts in 5 s).
DEFAULT_STRATEGY, DEFAULT_MAX_RESTARTS, DEFAULT_PERIOD = "one_for_one", 3, 5.0
# Backoff bounds when a backoff table gives only one of them: supervisor.Backoff's defaults.
DEFAULT_BACKOFF_MIN, DEFAULT_BACKOFF_MAX = 0.1, 10.0

SERVICE_FIELDS = ("class", "args", "kwargs", "replicas", "restart", "resources",
                  "checkpoint_interval", "backoff")
GROUP_FIELDS = ("strategy", "max_restarts", "period", "services")
SUPERVISOR_FIELDS = ("strategy", "max_restarts", "period")
TOP_LEVEL_TABLES = ("supervisor", "services")
BACKOFF_FIELDS = ("min", "max")
ROOT_NAME = "root"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CLASS_PATH = re.compile(rf"({_DOTTED}):({_DOTTED})\Z")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


class SpecError(ValueError):
    """An invalid service spec. The message names the file, the service or group and the field;
    the same are attributes: ``source`` (the file), ``kind`` (``"service"``, ``"group"``,
    ``"supervisor"`` or None for the file as a whole), ``name`` (the service or group, or None),
    ``field`` (e.g. ``"restart"``, ``"backoff.max"``, or None) and ``line`` (TOML syntax errors).
    """

    def __init__(self, message: str, *, source: str, kind: str | None = None, name: str | None = None,
                 field: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.source, self.kind, self.name, self.field, self.line = source, kind, name, field, line

    def __reduce__(self):  # picklable with its attributes (it may cross a process boundary)
        return (_rebuild_spec_error, (str(self), self.source, self.kind, self.name, self.field, self.line))


def _rebuild_spec_error(message, source, kind, name, field, line) -> SpecError:
    return SpecError(message, source=source, kind=kind, name=name, field=field, line=line)


@dataclass(frozen=True)
class ServiceSpec:
    """One service: a named actor (or ``replicas`` of them) built from ``class_path``.

    ``resources`` holds the custom resources only (``CPU`` is ``num_cpus``; None: the actor
    default). ``backoff`` is ``(min_s, max_s)`` or None (restart at once).
    """

    name: str
    class_path: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    replicas: int = 1
    restart: str = "permanent"
    resources: dict = field(default_factory=dict)
    num_cpus: float | None = None
    checkpoint_interval: float = 0.0
    backoff: tuple[float, float] | None = None

    def actor_names(self) -> list[str]:
        """The names of this service's actors: ``[name]``, or ``name-0`` ... with replicas > 1."""
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self.replicas)]


@dataclass(frozen=True)
class GroupSpec:
    """A group of services under one supervisor: its strategy, its restart intensity (more than
    ``max_restarts`` restarts within ``period`` seconds and it gives up; -1: no limit) and its
    children (services and groups) in start order."""

    name: str
    strategy: str
    max_restarts: int
    period: float
    children: tuple[ServiceSpec | GroupSpec, ...]

    def services(self) -> Iterator[ServiceSpec]:
        """Every service of the tree under this group, depth first, in start order."""
        for child in self.children:
            if isinstance(child, GroupSpec):
                yield from child.services()
            else:
                yield child

    def actor_names(self) -> list[str]:
        """The actor names of every service under this group, in start order."""
        return [name for service in self.services() for name in service.actor_names()]


@dataclass(frozen=True)
class SupervisorSpec(GroupSpec):
    """The root of the tree (the ``[supervisor]`` table and the top-level ``services``), named
    ``"root"``; ``source`` is the file it was read from (for error messages)."""

    source: str = "<string>"


def load_spec(path: str | os.PathLike) -> SupervisorSpec:
    """Read and validate the spec at ``path``; raise :class:`SpecError` naming the file."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = file.read()
    except OSError as error:
        raise SpecError(f"{source}: cannot read the spec: {error.strerror or error}",
                        source=source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{source}: the spec is not UTF-8 text ({error.reason} at byte {error.start})",
                        source=source) from None
    return parse_spec(text, source)


def parse_spec(text: str, source: str = "<string>") -> SupervisorSpec:
    """Parse and validate the TOML ``text`` of a spec (``source`` names it in errors)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        position = _TOML_POSITION.search(message)
        if position is None:
            raise SpecError(f"{source}: not valid TOML: {message}", source=source) from None
        line, column = int(position.group(1)), int(position.group(2))
        detail = message[:position.start()]
        raise SpecError(f"{source}: line {line}, column {column}: not valid TOML: {detail}",
                        source=source, line=line) from None
    return _Parser(source).root(document)


def resolve_class(service: ServiceSpec, source: str = "<spec>") -> Any:
    """Import the class of ``service`` (``module:Class``; ``Class`` may be dotted, for a nested
    class) and return it: a class, or an ``@actorcore.remote`` actor class. Raise
    :class:`SpecError` naming the service when the module cannot be imported or has no such
    attribute."""
    where = f"{source}: service {service.name!r}: field 'class'"

    def fail(message: str) -> SpecError:
        return SpecError(f"{where} {message}", source=source, kind="service", name=service.name, field="class")

    match = _CLASS_PATH.match(service.class_path)
    if match is None:
        raise fail(f"must be 'module:Class', got {service.class_path!r}")
    module_name, attribute = match.groups()
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise fail(f"{service.class_path!r}: cannot import module {module_name!r} ({error}); it must be "
                   "importable where the workers run (installed, or on PYTHONPATH)") from error
    except Exception as error:  # the module itself raised while being imported
        raise fail(f"{service.class_path!r}: importing module {module_name!r} raised "
                   f"{type(error).__name__}: {error}") from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise fail(f"{service.class_path!r}: {getattr(target, '__name__', target)!r} has no attribute "
                       f"{part!r}; check the class name after the ':'")
        target = getattr(target, part)
    from actorcore.actor import ActorClass  # here: parsing a spec needs none of the runtime

    if not isinstance(target, (type, ActorClass)):
        raise fail(f"{service.class_path!r} is a {type(target).__name__}, not a class")
    return target


class _Parser:
    """One pass over a parsed TOML document; remembers the names taken so far."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.taken: dict[str, str] = {ROOT_NAME: "the top supervisor"}  # actor/group name -> owner
        self.groups: list[str] = []  # the groups around the entry being parsed

    def error(self, kind: str | None, name: str | None, field_name: str | None, message: str) -> SpecError:
        where = [self.source]
        if kind == "supervisor":
            where.append("[supervisor]")
        elif kind is not None:
            where.append(f"{kind} {name!r}")
        if field_name is not None:
            message = f"field {field_name!r} {message}"
        return SpecError(": ".join([*where, message]), source=self.source, kind=kind, name=name,
                         field=field_name)

    def check_keys(self, table: Mapping, valid: tuple[str, ...], kind: str | None, name: str | None) -> None:
        for key in table:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                noun = "top-level table" if kind is None else "field"
                error = self.error(kind, name, None,
                                   f"unknown {noun} {key!r}; {hint}valid: {', '.join(valid)}")
                error.field = key
                raise error

    # -- the tree --

    def root(self, document: dict) -> SupervisorSpec:
        self.check_keys(document, TOP_LEVEL_TABLES, None, None)
        supervisor = document.get("supervisor", {})
        if not isinstance(supervisor, dict):
            raise self.error(None, None, None, f"'supervisor' must be a table ([supervisor]), "
                                               f"got {_show(supervisor)}")
        self.check_keys(supervisor, SUPERVISOR_FIELDS, "supervisor", None)
        if "services" not in document:
            raise self.error(None, None, None, "no services; add at least one [services.NAME] table "
                                               "with a class = \"module:Class\"")
        strategy, max_restarts, period = self.group_flags(supervisor, "supervisor", None)
        children = self.children(document["services"], "services", None, None)
        return SupervisorSpec(ROOT_NAME, strategy, max_restarts, period, children, source=self.source)

    def children(self, table: Any, where: str, kind: str | None, name: str | None) -> tuple:
        subject = "" if kind else "'services' "
        if not isinstance(table, dict):
            raise self.error(kind, name, "services" if kind else None,
                             f"{subject}must be a table of services ([{where}.NAME]), got {_show(table)}")
        if not table:
            raise self.error(kind, name, "services" if kind else None,
                             f"{subject}is empty; add at least one [{where}.NAME] table")
        children: list = []
        for child_name, entry in table.items():
            if not isinstance(entry, dict):
                raise self.error(None, None, None, f"{where}.{child_name} must be a table "
                                                   f"([{where}.{child_name}]), got {_show(entry)}")
            is_group = "services" in entry
            child_kind = "group" if is_group else "service"
            self.check_name(child_kind, child_name)
            if is_group:
                children.append(self.group(child_name, entry, f"{where}.{child_name}.services"))
            else:
                children.append(self.service(child_name, entry))
        return tuple(children)

    def check_name(self, kind: str, name: str) -> None:
        if not _NAME.match(name):
            raise self.error(kind, name, None, "the name may hold only letters, digits, '_', '-' and '.', "
                                               "and must not start with '-' or '.'")

    def take(self, kind: str, name: str, names: list[str]) -> None:
        for actor_name in names:
            owner = self.taken.get(actor_name)
            if owner is not None:
                what = "the name" if actor_name == name else f"the actor name {actor_name!r}"
                raise self.error(kind, name, None, f"{what} is already taken by {owner}; service and group "
                                                   "names (and replica names NAME-0, NAME-1, ...) must be "
                                                   "unique across the whole spec")
        place = f" (in group {self.groups[-1]!r})" if self.groups else " (at the top level)"
        for actor_name in names:
            self.taken[actor_name] = f"{kind} {name!r}{place}"

    def group_flags(self, table: dict, kind: str, name: str | None) -> tuple[str, int, float]:
        strategy = table.get("strategy", DEFAULT_STRATEGY)
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise self.error(kind, name, "strategy", f"must be one of {', '.join(STRATEGIES)}, got {_show(strategy)}")
        max_restarts = table.get("max_restarts", DEFAULT_MAX_RESTARTS)
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < -1:
            raise self.error(kind, name, "max_restarts",
                             f"must be an int >= 0 (or -1 for unlimited), got {_show(max_restarts)}")
        period = table.get("period", DEFAULT_PERIOD)
        if not _is_number(period) or not period > 0:
            raise self.error(kind, name, "period",
                             f"must be a number of seconds > 0 (inf: count restarts forever), got {_show(period)}")
        return strategy, max_restarts, float(period)

    def group(self, name: str, table: dict, where: str) -> GroupSpec:
        if "class" in table:
            raise self.error("group", name, "class", "is not allowed in a group: an entry with 'services' is a "
                                                     "group (a nested supervisor), one with 'class' a service")
        self.check_keys(table, GROUP_FIELDS, "group", name)
        self.take("group", name, [name])
        strategy, max_restarts, period = self.group_flags(table, "group", name)
        self.groups.append(name)
        children = self.children(table["services"], where, "group", name)
        self.groups.pop()
        return GroupSpec(name, strategy, max_restarts, period, children)

    # -- a service --

    def service(self, name: str, table: dict) -> ServiceSpec:
        self.check_keys(table, SERVICE_FIELDS, "service", name)

        def bad(field_name: str, message: str) -> SpecError:
            return self.error("service", name, field_name, message)

        if "class" not in table:
            raise bad("class", "is missing; give class = \"module:Class\" (or a 'services' table to make "
                               "this a group)")
        class_path = table["class"]
        if not isinstance(class_path, str) or not _CLASS_PATH.match(class_path):
            raise bad("class", f"must be 'module:Class' (e.g. \"mypkg.services:Counter\"), got {_show(class_path)}")

        args = table.get("args", [])
        if not isinstance(args, list):
            raise bad("args", f"must be an array of positional arguments, got {_show(args)}")
        kwargs = table.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise bad("kwargs", f"must be a table of keyword arguments, got {_show(kwargs)}")
        for key in kwargs:
            if not key.isidentifier():
                raise bad("kwargs", f"has the key {key!r}, which is not a Python identifier")

        replicas = table.get("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise bad("replicas", f"must be an int >= 1, got {_show(replicas)}")
        restart = table.get("restart", "permanent")
        if not isinstance(restart, str) or restart not in RESTARTS:
            raise bad("restart", f"must be one of {', '.join(RESTARTS)}, got {_show(restart)}")

        resources, num_cpus = self.resources(table.get("resources", {}), bad)

        checkpoint_interval = table.get("checkpoint_interval", 0.0)
        if not _is_number(checkpoint_interval) or not 0 <= checkpoint_interval < math.inf:
            raise bad("checkpoint_interval", "must be a finite number of seconds >= 0 (0: only on graceful "
                                             f"stop), got {_show(checkpoint_interval)}")

        backoff = self.backoff(table["backoff"], bad) if "backoff" in table else None

        spec = ServiceSpec(name, class_path, tuple(args), dict(kwargs), replicas, restart, resources,
                           num_cpus, float(checkpoint_interval), backoff)
        self.take("service", name, spec.actor_names())
        return spec

    def resources(self, value: Any, bad) -> tuple[dict, float | None]:
        if not isinstance(value, dict):
            raise bad("resources", f"must be a table of resource name -> number >= 0 (e.g. {{ CPU = 1 }}), "
                                   f"got {_show(value)}")
        resources: dict = {}
        num_cpus = None
        for key, quantity in value.items():
            if not key:
                raise bad("resources", "has an empty resource name")
            if not _is_number(quantity) or not 0 <= quantity < math.inf:
                raise bad(f"resources.{key}", f"must be a finite number >= 0, got {_show(quantity)}")
            if key == "GPU":
                raise bad("resources.GPU", "is not supported by actorcore supervise; use CPU or custom resources")
            if key == "CPU":
                num_cpus = float(quantity)
            else:
                resources[key] = quantity
        return resources, num_cpus

    def backoff(self, value: Any, bad) -> tuple[float, float]:
        if not isinstance(value, dict):
            raise bad("backoff", f"must be a table {{ min = SECONDS, max = SECONDS }}, got {_show(value)}")
        for key in value:
            if key not in BACKOFF_FIELDS:
                raise bad(f"backoff.{key}", f"is unknown; valid: {', '.join(BACKOFF_FIELDS)}")
        low = value.get("min", DEFAULT_BACKOFF_MIN)
        if not _is_number(low) or not 0 <= low < math.inf:
            raise bad("backoff.min", f"must be a finite number of seconds >= 0, got {_show(low)}")
        high = value.get("max", max(DEFAULT_BACKOFF_MAX, low))
        if not _is_number(high) or not high >= low:
            raise bad("backoff.max", f"must be a number of seconds >= backoff.min ({low!r}), got {_show(high)}")
        return float(low), float(high)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _show(value: Any) -> str:
    """A value as the user wrote it, roughly: strings quoted, tables as tables."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)
