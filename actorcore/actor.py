"""Actors (Ray's ActorClass, ActorHandle, ActorMethod): `Cls.remote()`, `handle.m.remote()`.

`actorcore.actor.ActorHandle` is importable under this module path, as in Ray. A handle can
be passed to tasks and other actors: it names the actor and its owner (the process that
created it), which tells a new holder where the actor lives.
"""

from __future__ import annotations

import inspect
import pickle

from . import api
from . import exceptions as exc
from . import options as opts
from .remote_function import _Exported, prepare_args


def method(*, num_returns: int = 1):
    """`@ray.method(num_returns=k)` on an actor method."""
    if not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"method(num_returns=...) takes an int >= 0, got {num_returns!r}")

    def decorate(function):
        function.__actorcore_num_returns__ = num_returns
        return function

    return decorate


class ActorClass:
    def __init__(self, cls: type, options: dict) -> None:
        self._cls = cls
        self._name = cls.__name__
        self._options = opts.validate("actor", options, where=f"@remote on class {self._name}")
        self._exported = _Exported(cls)
        self._methods = {
            name: getattr(member, "__actorcore_num_returns__", 1)
            for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("__") or name == "__call__"
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
        return self._remote(args, kwargs, opts.resolve("actor", self._options, where=f"{self._name}.remote()"))

    def options(self, **options) -> _BoundActorOptions:
        where = f"{self._name}.options()"
        validated = opts.validate("actor", options, where=where)
        return _BoundActorOptions(self, opts.resolve("actor", self._options, validated, where=where))

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> ActorHandle:
        core = api._runtime()
        name = options.get("name")
        namespace = options.get("namespace") or core.namespace
        if name is not None and options.get("get_if_exists"):
            try:
                return api.get_actor(name, namespace)
            except ValueError:
                pass
        class_id = self._exported.export_to(core)
        prepared_args, prepared_kwargs = prepare_args(core, f"{self._name}.__init__", args, kwargs)
        actor_id = core.new_id("a")
        handle = ActorHandle(actor_id, class_id, self._name, self._methods, core.actor, namespace, name)
        created = core.create_actor(actor_id, class_id, self._name, prepared_args, prepared_kwargs,
                                    {**options, "namespace": namespace}, self._is_async,
                                    pickle.dumps(handle) if name is not None else None)
        if created is None:  # the name is taken
            if options.get("get_if_exists"):
                return api.get_actor(name, namespace)
            raise exc.ActorAlreadyExistsError(name, namespace)
        return handle


class _BoundActorOptions:
    def __init__(self, actor_class: ActorClass, options: dict) -> None:
        self._actor_class = actor_class
        self._options = options

    def remote(self, *args, **kwargs) -> ActorHandle:
        return self._actor_class._remote(args, kwargs, self._options)


class ActorHandle:
    def __init__(self, actor_id: str, class_id: str, name: str, methods: dict, owner,
                 namespace: str, actor_name: str | None, worker=None) -> None:
        self._actor_id = actor_id
        self._class_id = class_id
        self._name = name
        self._methods = methods
        self._owner = owner
        self._namespace = namespace
        self._actor_name = actor_name
        self._worker = worker  # (executor ref, pid) when known where it was pickled

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_methods")
        if methods is None or name not in methods:
            raise AttributeError(f"actor {self.__dict__.get('_name', '?')} has no method {name!r}")
        return ActorMethod(self, name, methods[name])

    def __reduce__(self):
        core = api._runtime_or_none()
        worker = core.worker_hint(self._actor_id) if core is not None else None
        return (ActorHandle, (self._actor_id, self._class_id, self._name, self._methods, self._owner,
                              self._namespace, self._actor_name, worker or self._worker))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._name}, {self._actor_id})"


class ActorMethod:
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
        return self._remote(args, kwargs, self._num_returns)

    def options(self, **options) -> _BoundMethodOptions:
        where = f"{self._method}.options()"
        validated = opts.validate("method", options, where=where)
        resolved = opts.resolve("method", {"num_returns": self._num_returns}, validated, where=where)
        return _BoundMethodOptions(self, resolved["num_returns"])

    def _remote(self, args: tuple, kwargs: dict, num_returns: int):
        core = api._runtime()
        handle = self._handle
        prepared_args, prepared_kwargs = prepare_args(core, f"{handle._name}.{self._method}", args, kwargs)
        refs = core.submit_actor_task(handle, self._method, prepared_args, prepared_kwargs, num_returns)
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs


class _BoundMethodOptions:
    def __init__(self, method_: ActorMethod, num_returns: int) -> None:
        self._method = method_
        self._num_returns = num_returns

    def remote(self, *args, **kwargs):
        return self._method._remote(args, kwargs, self._num_returns)
