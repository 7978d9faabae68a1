"""`@remote` functions (Ray's RemoteFunction): `.remote()`, `.options()`, export once.

The function is pickled once (cloudpickle), named by the hash of its bytes, and exported to
the GCS the first time it is called in a process; each call then sends only that id and
the arguments.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import cloudpickle

from . import api
from . import options as opts
from .object_ref import ObjectRef
from .objects import INLINE_THRESHOLD, serialize
from .protocol import NUM_RETURNS_DYNAMIC, NUM_RETURNS_STREAMING, Inline
from .ray_compat import shippable

__all__ = ["RemoteFunction", "generator_num_returns", "prepare_args"]

_GENERATOR_NUM_RETURNS = {"streaming": NUM_RETURNS_STREAMING, "dynamic": NUM_RETURNS_DYNAMIC}


def generator_num_returns(options: dict, is_generator: bool, where: str) -> dict:
    """`options` (resolved) with num_returns "streaming"/"dynamic" as the int a TaskSpec carries.

    A generator function streams by default, as in Ray; "streaming" and "dynamic" are for
    generator functions only (ValueError otherwise).
    """
    num_returns = options["num_returns"]
    if type(num_returns) is not str:
        return options
    if not is_generator:
        raise ValueError(f"{where}: num_returns={num_returns!r} needs a generator function (one that "
                         "yields), and this one is not; give an int instead")
    return {**options, "num_returns": _GENERATOR_NUM_RETURNS[num_returns]}


class _Exported:
    """A function or class pickled once, with its content-addressed id."""

    __slots__ = ("obj", "_blob", "_id")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self._blob: bytes | None = None
        self._id: str | None = None

    @property
    def id(self) -> str:
        if self._id is None:
            try:
                self._blob = shippable(cloudpickle.dumps(self.obj))
            except Exception as error:
                raise TypeError(f"{getattr(self.obj, '__qualname__', self.obj)!r} cannot be pickled to "
                                f"ship it to workers: {error}") from error
            self._id = hashlib.sha1(self._blob).hexdigest()
        return self._id

    def export_to(self, core) -> str:
        function_id = self.id
        if function_id not in core.exported:
            core.export(function_id, self._blob)
        return function_id


def prepare_args(core, name: str, args: tuple, kwargs: dict) -> tuple[list, dict]:
    """Serialize top-level arguments now (errors name the argument); refs stay refs."""

    def prepare(value: Any, where: str):
        if type(value) is ObjectRef:
            return value
        try:
            serialized = serialize(value)
        except TypeError as error:
            raise TypeError(f"{where} of {name} ({type(value).__qualname__}) cannot be serialized: {error}") from None
        if serialized.total_size < INLINE_THRESHOLD:
            return Inline(serialized.to_bytes())
        return core.objects.put(value, serialized=serialized)  # large: into the arena, freed when the task is done

    prepared_args = [prepare(value, f"argument {index}") for index, value in enumerate(args)]
    prepared_kwargs = {key: prepare(value, f"keyword argument {key!r}") for key, value in kwargs.items()}
    return prepared_args, prepared_kwargs


class RemoteFunction:
    """A function decorated with ``@remote``: ``f.remote(*args)`` runs it as a task and returns
    the ObjectRef of its result; ``f.options(...)`` overrides its options for one call."""

    def __init__(self, function: Callable, options: dict) -> None:
        self._function = function
        self._name = getattr(function, "__qualname__", repr(function))
        self._options = opts.validate("task", options, where=f"@remote on {self._name}")
        self._is_generator = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        self._defaults = {"num_returns": "streaming"} if self._is_generator else {}
        if (self._options.get("num_gpus") or 0) > 0 and self._options.get("max_calls") is None:
            # As Ray: a GPU function's worker runs it once, then exits (so GPU memory a library
            # holds is given back), unless the decorator gives max_calls (0: no limit).
            self._defaults["max_calls"] = 1
        where = f"@remote on {self._name}"
        self._resolved = generator_num_returns(opts.resolve("task", self._defaults, self._options, where=where),
                                               self._is_generator, where)
        self._exported = _Exported(function)
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", self._name)
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{self.__name__}()', "
            f"try '{self.__name__}.remote()'."
        )

    def remote(self, *args, **kwargs):
        """Run the function as a task with `args`, `kwargs`: the ObjectRef of its result (a list
        of ``num_returns`` refs, or None for ``num_returns=0``). Raises TypeError if an
        argument cannot be serialized."""
        return self._remote(args, kwargs, self._resolved)

    def options(self, **options) -> _BoundOptions:
        """The function with `options` (``num_cpus``, ``num_returns``, ``max_retries``...) for
        one call: ``f.options(...).remote()``. Raises ValueError or TypeError for options that
        do not fit."""
        where = f"{self.__name__}.options()"
        if "max_calls" in options:  # as Ray: it belongs to the function (its workers retire)
            raise ValueError(f"{where}: setting 'max_calls' is not supported in .options(): give it "
                             "to @remote on the function.")
        validated = opts.validate("task", options, where=where)
        resolved = opts.resolve("task", self._defaults, self._options, validated, where=where)
        return _BoundOptions(self, generator_num_returns(resolved, self._is_generator, where))

    def _remote(self, args: tuple, kwargs: dict, options: dict):
        core = api._runtime()
        function_id = self._exported.export_to(core)
        prepared_args, prepared_kwargs = prepare_args(core, self.__name__, args, kwargs)
        refs = core.tasks.submit(function_id, self.__name__, prepared_args, prepared_kwargs, options, core.namespace)
        num_returns = options["num_returns"]
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        if num_returns == NUM_RETURNS_STREAMING:
            return core.streams.open(refs[0])
        if num_returns == NUM_RETURNS_DYNAMIC:
            return refs[0]
        return refs


class _BoundOptions:
    def __init__(self, function: RemoteFunction, options: dict) -> None:
        self._function = function
        self._options = options

    def remote(self, *args, **kwargs):
        return self._function._remote(args, kwargs, self._options)
