"""Actors (Ray's ActorClass, ActorHandle, ActorMethod): `Cls.remote()`, `handle.m.remote()`,
and the functions on handles, `kill` and `get_actor`.

`actorcore.actor.ActorHandle` is importable under this module path, as in Ray. A handle can
be passed to tasks and other actors: it names the actor and its owner (the process that
created it), which tells a new holder where the actor lives. Its own attributes are prefixed
``_actorcore_`` (as Ray prefixes ``_ray_``): every other attribute name is a method of the
actor, even one like ``_name``.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle

from . import api, runtime
from . import exceptions as exc
from . import options as opts
from .protocol import NUM_RETURNS_DYNAMIC, NUM_RETURNS_STREAMING
from .remote_function import _Exported, generator_num_returns, prepare_args

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "get_actor", "kill", "method"]


def method(*, num_returns: int | str = 1, concurrency_group: str | None = None, **options):
    """`@ray.method(num_returns=k, concurrency_group="io")` on an actor method.

    ``num_returns`` is an int, or ``"streaming"`` / ``"dynamic"`` for a generator method (which
    streams by default). ``concurrency_group`` names one of the actor's
    ``concurrency_groups``: the method's calls run under that group's limit.
    ``enable_task_events=False`` keeps the method's calls out of the task events (and so out of
    `list_tasks`), whatever the actor's option says. Ray's other method options are checked as
    for ``.options()`` on a method (accepted, or refused with the reason).
    """
    if num_returns not in ("streaming", "dynamic") and (
            not isinstance(num_returns, int) or isinstance(num_returns, bool) or num_returns < 0):
        raise ValueError(f"method(num_returns=...) takes an int >= 0, 'streaming' or 'dynamic', got {num_returns!r}")
    checked = {"concurrency_group": concurrency_group} if concurrency_group is not None else {}
    opts.validate("method", {**checked, **options}, where="@method")

    def decorate(function):
        function.__actorcore_num_returns__ = num_returns
        if concurrency_group is not None:
            function.__actorcore_concurrency_group__ = concurrency_group
        if options.get("enable_task_events") is not None:
            function.__actorcore_task_events__ = options["enable_task_events"]
        return function

    return decorate


class ActorClass:
    """A class decorated with ``@remote``: ``Cls.remote(*args)`` creates an actor and returns
    its ActorHandle; ``Cls.options(...)`` overrides the class's options for one creation."""

    def __init__(self, cls: type, options: dict) -> None:
        self._cls = cls
        self._name = cls.__name__
        self._options = opts.validate("actor", options, where=f"@remote on class {self._name}")
        self._exported = _Exported(cls)
        self._methods = {
            name: _method_num_returns(f"{self._name}.{name}", member)
            for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("__") or name == "__call__"
        }
        #: method name -> its enable_task_events, where its @method gave one
        self._method_events = {
            name: member.__actorcore_task_events__ for name, member in inspect.getmembers(cls, callable)
            if name in self._methods and hasattr(member, "__actorcore_task_events__")
        }
        self._is_async = any(
            inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
            for _, member in inspect.getmembers(cls, inspect.isfunction)
        )
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self._name}()', use "
            f"'{self._name}.remote()'."
        )

    def remote(self, *args, **kwargs) -> ActorHandle:
        """Create an actor (its constructor gets `args`, `kwargs`) and return its handle.

        Raises ActorAlreadyExistsError if its ``name`` option names a live actor (unless
        ``get_if_exists``), TypeError if an argument cannot be serialized.
        """
        return self._remote(args, kwargs, opts.resolve("actor", self._options, where=f"{self._name}.remote()"))

    def options(self, **options) -> _BoundActorOptions:
        """The class with `options` (as for ``@remote``, plus ``name``, ``namespace``,
        ``lifetime``, ``get_if_exists``...) for one creation: ``.options(...).remote()``.
        Raises ValueError or TypeError for options that do not fit."""
        where = f"{self._name}.options()"
        if "concurrency_groups" in options:  # as Ray: they are part of the class
            raise ValueError(f"{where}: setting 'concurrency_groups' is not supported in .options(): "
                             "give them to @remote on the class.")
        validated = opts.validate("actor", options, where=where)
        return _BoundActorOptions(self, opts.resolve("actor", self._options, validated, where=where))

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> ActorHandle:
        core = api._runtime()
        name = options.get("name")
        namespace = options.get("namespace") or core.namespace
        if name is not None and options.get("get_if_exists"):
            try:
                return get_actor(name, namespace)
            except ValueError:
                pass
        class_id = self._exported.export_to(core)
        prepared_args, prepared_kwargs = prepare_args(core, f"{self._name}.__init__", args, kwargs)
        actor_id = core.new_id("a")
        events = options["enable_task_events"]
        quiet = frozenset(method for method in self._methods if not self._method_events.get(method, events))
        handle = ActorHandle(actor_id, class_id, self._name, self._methods, core.actor, namespace, name,
                             max_pending_calls=options.get("max_pending_calls") or -1, quiet=quiet)
        created = core.actors.create(actor_id, class_id, self._name, prepared_args, prepared_kwargs,
                                     {**options, "namespace": namespace}, self._is_async, core.namespace,
                                     pickle.dumps(handle) if name is not None else None)
        if created is None:  # the name is taken
            if options.get("get_if_exists"):
                return get_actor(name, namespace)
            raise exc.ActorAlreadyExistsError(name, namespace)
        return handle


class _BoundActorOptions:
    def __init__(self, actor_class: ActorClass, options: dict) -> None:
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args, **kwargs) -> ActorHandle:
        return self._actor_class._remote(args, kwargs, self._options)


def _method_num_returns(name: str, member) -> int:
    """A method's num_returns as a TaskSpec carries it (a generator method streams by default)."""
    is_generator = inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)
    num_returns = getattr(member, "__actorcore_num_returns__", "streaming" if is_generator else 1)
    return generator_num_returns({"num_returns": num_returns}, is_generator, f"method {name}")["num_returns"]


class ActorHandle:
    """A handle to an actor: ``handle.method.remote(*args)`` calls one of its methods and
    returns the ObjectRef of the result. Handles can be passed to tasks and other actors, and
    found by name with `get_actor`; two handles to one actor are equal."""

    def __init__(self, actor_id: str, class_id: str, name: str, methods: dict, owner,
                 namespace: str, actor_name: str | None, worker=None, max_pending_calls: int = -1,
                 quiet: frozenset = frozenset()) -> None:
        self._actorcore_actor_id = actor_id
        self._actorcore_class_id = class_id
        self._actorcore_name = name  # the class's name
        self._actorcore_methods = methods  # method name -> num_returns
        self._actorcore_owner = owner  # the owner's core actor
        self._actorcore_namespace = namespace
        self._actorcore_actor_name = actor_name  # its name option, if named
        self._actorcore_worker = worker  # (executor ref, pid) when known where it was pickled
        self._actorcore_max_pending_calls = max_pending_calls  # per handle; -1: no limit
        self._actorcore_quiet = quiet  # the methods whose calls record no task events
        self._actorcore_pending: list = []  # first return ref of each call, while limited

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_actorcore_methods")
        if methods is None or name not in methods:
            raise AttributeError(f"actor {self.__dict__.get('_actorcore_name', '?')} has no method {name!r}")
        return ActorMethod(self, name, methods[name])

    def __reduce__(self):
        core = runtime.current()
        worker = core.actors.worker_hint(self._actorcore_actor_id) if core is not None else None
        return (ActorHandle, (self._actorcore_actor_id, self._actorcore_class_id, self._actorcore_name,
                              self._actorcore_methods, self._actorcore_owner, self._actorcore_namespace,
                              self._actorcore_actor_name, worker or self._actorcore_worker,
                              self._actorcore_max_pending_calls, self._actorcore_quiet))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actorcore_actor_id == self._actorcore_actor_id

    def __hash__(self) -> int:
        return hash(self._actorcore_actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._actorcore_name}, {self._actorcore_actor_id})"


class ActorMethod:
    """A method of an actor, from its handle: ``.remote(*args)`` calls it; ``.options(num_returns=k)``."""

    __slots__ = ("_handle", "_method", "_num_returns")

    def __init__(self, handle: ActorHandle, method_name: str, num_returns: int) -> None:
        self._handle = handle
        self._method = method_name
        self._num_returns = num_returns

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running 'object.{self._method}()', "
            f"try 'object.{self._method}.remote()'."
        )

    def remote(self, *args, **kwargs):
        """Call the method with `args`, `kwargs`: the ObjectRef of its result (a list of
        ``num_returns`` refs, or None for ``num_returns=0``). Calls from one caller run in order."""
        return self._remote(args, kwargs, self._num_returns)

    def options(self, **options) -> _BoundMethodOptions:
        """The method with options (``num_returns``, ``concurrency_group``) for one call:
        ``.options(...).remote()``."""
        where = f"{self._method}.options()"
        validated = opts.validate("method", options, where=where)
        resolved = opts.resolve("method", {"num_returns": self._num_returns}, validated, where=where)
        # (a handle does not know whether a method that returns by default is a generator)
        resolved = generator_num_returns(resolved, True, where)
        return _BoundMethodOptions(self, resolved["num_returns"], resolved["_generator_backpressure_num_objects"],
                                   resolved["concurrency_group"], validated.get("enable_task_events"))

    def _remote(self, args: tuple, kwargs: dict, num_returns: int, backpressure: int = -1,
                concurrency_group: str | None = None, events: bool | None = None):
        core = api._runtime()
        handle = self._handle
        limit = handle._actorcore_max_pending_calls
        if limit >= 0:
            _check_pending_calls(core, handle, self._method, limit)
        prepared_args, prepared_kwargs = prepare_args(core, f"{handle._actorcore_name}.{self._method}", args, kwargs)
        if events is None:
            events = self._method not in handle._actorcore_quiet
        refs = core.actors.submit(handle, self._method, prepared_args, prepared_kwargs, num_returns, backpressure,
                                  concurrency_group, events)
        if limit >= 0 and refs:
            handle._actorcore_pending.append(refs[0])
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        if num_returns == NUM_RETURNS_STREAMING:
            return core.streams.open(refs[0])
        if num_returns == NUM_RETURNS_DYNAMIC:
            return refs[0]
        return refs


class _BoundMethodOptions:
    def __init__(self, method_: ActorMethod, num_returns: int, backpressure: int = -1,
                 concurrency_group: str | None = None, events: bool | None = None) -> None:
        self._method = method_
        self._num_returns = num_returns
        self._backpressure = backpressure
        self._concurrency_group = concurrency_group
        self._events = events

    def remote(self, *args, **kwargs):
        return self._method._remote(args, kwargs, self._num_returns, self._backpressure, self._concurrency_group,
                                    self._events)


def _check_pending_calls(core, handle: ActorHandle, method_name: str, limit: int) -> None:
    """Raise PendingCallsLimitExceeded if `handle` has `limit` calls whose results are not ready."""
    objects = core.objects
    handle._actorcore_pending = pending = [
        ref for ref in handle._actorcore_pending if ref.id in objects and objects[ref.id].payload is None]
    if len(pending) >= limit:
        raise exc.PendingCallsLimitExceeded(
            f"The call {handle._actorcore_name}.{method_name} could not be submitted to actor "
            f"{handle._actorcore_actor_id}: {len(pending)} calls made with this handle are pending and "
            f"the actor's max_pending_calls is {limit}. Wait for some results, or raise the limit "
            "with the max_pending_calls actor option.")


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """End the actor of handle ``actor`` at once (its pending calls fail with ActorDiedError).

    ``no_restart=False`` lets an actor with ``max_restarts`` left be restarted. Raises
    TypeError if ``actor`` is not an actor handle.
    """
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"kill() takes an actor handle, got a {type(actor).__qualname__}")
    api._runtime().actors.kill(actor, no_restart)


def exit_actor() -> None:
    """End the actor this code runs in, on purpose: it is not restarted whatever its
    ``max_restarts``. Raises at once (SystemExit, or AsyncioActorExit in an async actor's
    coroutine) so the calling method returns no value: its caller, the calls queued behind it
    and every later call raise ActorDiedError saying the actor exited intentionally. Calls
    already running on a threaded or async actor finish first.

    Raises TypeError outside an actor (in a driver or a task); use ``kill(handle)`` to end an
    actor from outside.
    """
    core = runtime.current()
    if core is None or core.is_driver or core.hosted_actor_id is None:
        where = "a task" if core is not None and not core.is_driver else "the driver"
        raise TypeError(f"exit_actor() was called in {where}, not in an actor: call it inside "
                        "an actor method to end that actor, or use kill(handle) from outside.")
    core.actor_exit_requested = True
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        error = SystemExit(0)
        error.actorcore_exit_actor = True
        raise error from None
    raise exc.AsyncioActorExit("exit_actor() was called")


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor named ``name`` in ``namespace`` (default: this driver's).

    Raises ValueError if there is no such actor (or it was killed).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty actor name, got {name!r}")
    core = api._runtime()
    found = core.actors.lookup(name, namespace or core.namespace)
    if found is None:
        where = f" in namespace {namespace!r}" if namespace else ""
        raise ValueError(f"Failed to look up actor with name '{name}'{where}: no such actor (or it was killed)")
    blob, worker = found
    handle = pickle.loads(blob)
    if handle._actorcore_worker is None and worker is not None:
        handle._actorcore_worker = (core.system.ref_from_uri(worker[0]), worker[1])
    return handle
