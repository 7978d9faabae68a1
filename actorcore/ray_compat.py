"""Ray's module names for actorcore: the table of which ``ray.*`` module is which actorcore
module, and the import hook that makes ``import ray`` mean actorcore in one process.

Nothing happens on import of this module. `install` (called by ``actorcore run`` before the
program starts) puts a finder in front of ``sys.meta_path`` that answers every ``ray`` and
``ray.*`` import of *this process only*; nothing named ``ray`` is installed anywhere, and a
real Ray in the same environment still imports normally in every other process.

- ``ray`` is a module of its own named ``"ray"`` whose every name is actorcore's (the same
  objects: ``ray.get is actorcore.get``). ``ray.__version__`` is `RAY_API_VERSION`, the Ray
  release whose API actorcore implements, so that a program gating on a minimum Ray version
  runs; actorcore's own version is ``actorcore.__version__``.
- A ``ray.*`` name in `RAY_MODULES` is that actorcore module itself (``ray.util`` *is*
  ``actorcore.util``); a mapped module this installation lacks raises ModuleNotFoundError
  saying so.
- Any other ``ray.*`` module, and ``from ray import X`` or ``ray.X`` for one of Ray's
  libraries (`RAY_LIBRARIES`: ``ray.data``, ``ray.tune``...), raises ModuleNotFoundError
  naming it: actorcore runs Ray Core programs.

How workers learn it. A worker serves tasks of several drivers (in a cluster started with
``actorcore start`` its workers are the node's, not the driver's), so neither its
environment nor its startup can say whether ``ray`` should mean actorcore. The decision
travels with the code instead: a process that has `install`\\ ed the alias ships each
function and actor class it exports (once per definition, never per call) wrapped by
`shippable`, and ``ray`` itself pickles as "install the alias, then ``ray``". A worker that
loads such a definition installs the alias before unpickling it, so the definition's module
(a program's own module imported by reference, with its ``import ray``) resolves there
exactly as in the driver. Workers that only ever run code of plain drivers never resolve
``ray``: a real Ray installed beside actorcore, and libraries that probe
``importlib.util.find_spec("ray")`` to enable a Ray integration, are left alone. Once a worker
has installed the alias it keeps it for its life (its later tasks of plain drivers see it
too); a real Ray module already imported in that process stays what ``sys.modules`` holds.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import pickle
import sys
import threading
from types import ModuleType

__all__ = ["RAY_API_VERSION", "RAY_LIBRARIES", "RAY_MODULES", "install", "installed", "shippable"]

RAY_API_VERSION = "2.60.0"  # ray.__version__ under the alias: the Ray API actorcore implements

# ray.* module -> the module that answers for it. ``ray.ObjectRef``, ``ray.ActorHandle`` and
# the other API names come with the top level; ray.util's submodules are actorcore.util's.
RAY_MODULES: dict[str, str] = {
    "ray": "actorcore",
    # Ray's docs import ObjectRef and ObjectRefGenerator from here: actorcore's top level has them
    "ray._raylet": "actorcore",
    "ray.actor": "actorcore.actor",
    "ray.cloudpickle": "cloudpickle",
    "ray.exceptions": "actorcore.exceptions",
    "ray.experimental": "actorcore.experimental",
    "ray.experimental.tqdm_ray": "actorcore.experimental.tqdm_ray",
    "ray.remote_function": "actorcore.remote_function",
    "ray.runtime_context": "actorcore.runtime_context",
    "ray.runtime_env": "actorcore.runtime_env",
    "ray.util": "actorcore.util",
    "ray.util.accelerators": "actorcore.util.accelerators",
    "ray.util.actor_pool": "actorcore.util.actor_pool",
    "ray.util.check_serialize": "actorcore.util.check_serialize",
    "ray.util.multiprocessing": "actorcore.util.multiprocessing",
    "ray.util.placement_group": "actorcore.util.placement_group",
    "ray.util.queue": "actorcore.util.queue",
    "ray.util.scheduling_strategies": "actorcore.util.scheduling_strategies",
}

# Ray's libraries and internals reached as ``ray.X`` / ``from ray import X``: not provided.
RAY_LIBRARIES = frozenset({
    "_private", "air", "autoscaler", "client", "cluster_utils", "dag", "dashboard", "data",
    "job_config", "job_submission", "llm", "rllib", "serve", "train", "tune",
    "widgets", "workflow",
})

# What ``import ray`` makes reachable as attributes in Ray (``ray.util.ActorPool``,
# ``ray.actor.exit_actor``...) without importing the submodule: loaded when the alias is.
_ATTRIBUTE_SUBMODULES = ("ray.actor", "ray.exceptions", "ray.runtime_context", "ray.util")


def _not_provided(name: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"No module named {name!r}: actorcore runs Ray Core programs; {name} is not provided", name=name)


class _RayModule(ModuleType):
    """``ray``: actorcore's names under Ray's module name (each looked up once, then kept)."""

    def __init__(self, actorcore: ModuleType) -> None:
        super().__init__("ray", "Ray's API, provided by actorcore (`actorcore run`).")
        self.__path__: list[str] = []  # a package: its submodules come from the finder only
        self.__file__ = actorcore.__file__  # where the code that answers is
        self.__version__ = RAY_API_VERSION
        self.__all__ = list(actorcore.__all__)
        self._actorcore = actorcore

    def __getattr__(self, name: str):
        try:
            value = getattr(self._actorcore, name)
        except AttributeError:
            if name in RAY_LIBRARIES:
                raise _not_provided(f"ray.{name}") from None
            raise AttributeError(f"module 'ray' has no attribute {name!r}") from None
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(dir(self._actorcore)))

    def __reduce__(self):
        return _ray_module, ()


def _ray_module() -> ModuleType:
    """``ray`` where a pickle naming it is loaded: the alias is installed there first."""
    return install()


class _ExistingModule(importlib.abc.Loader):
    """Loads a ``ray.*`` name as a module that already exists, leaving the module unchanged."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        if self.spec is not None:
            module.__spec__ = self.spec  # the import system set the alias's spec: keep the module's own


class _RayFinder(importlib.abc.MetaPathFinder):
    """Answers ``ray`` and ``ray.*`` from `RAY_MODULES`; every other name is not its business."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != "ray" and not fullname.startswith("ray."):
            return None
        module = _resolve(fullname)
        return importlib.util.spec_from_loader(fullname, _ExistingModule(module),
                                               is_package=hasattr(module, "__path__"))


def _resolve(name: str) -> ModuleType:
    """The module that answers for ``ray.*`` module `name`; ModuleNotFoundError naming it if
    actorcore provides none."""
    target = RAY_MODULES.get(name)
    if target is None:
        raise _not_provided(name)
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is None or not (target == error.name or target.startswith(error.name + ".")):
            raise  # the module exists; something it imports does not
        raise ModuleNotFoundError(
            f"No module named {name!r}: actorcore provides it as {target}, which this installation "
            "of actorcore does not have", name=name) from None
    return _RayModule(module) if name == "ray" else module


_finder = _RayFinder()
_installing = threading.Lock()  # threads of a worker may load definitions at once


def installed() -> bool:
    """Whether ``import ray`` means actorcore in this process."""
    return _finder in sys.meta_path


def install() -> ModuleType:
    """Make ``import ray`` and the ``ray.*`` names of `RAY_MODULES` resolve to actorcore in
    this process (idempotent); return the ``ray`` module."""
    with _installing:
        if not installed():
            sys.meta_path.insert(0, _finder)
    ray = importlib.import_module("ray")
    for name in _ATTRIBUTE_SUBMODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:  # a part not in this installation: importing it says so
            pass
    return ray


class _WithRayAlias:
    """A pickled definition that installs the alias where it is unpickled, before itself."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self):
        return _load_with_ray_alias, (self.blob,)


def _load_with_ray_alias(blob: bytes):
    install()
    return pickle.loads(blob)


def shippable(blob: bytes) -> bytes:
    """`blob` (a pickled function or actor class) as it is shipped to workers: unchanged, or,
    in a process that has `install`\\ ed the alias, wrapped so that the worker installs it too
    before unpickling the definition."""
    if not installed():
        return blob
    return pickle.dumps(_WithRayAlias(blob), protocol=pickle.HIGHEST_PROTOCOL)
