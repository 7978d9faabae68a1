"""Ray's module names for actorcore: the table of which ``ray.*`` module is which actorcore
module, and the import hook that makes ``import ray`` mean actorcore in one process.

Nothing happens on import of this module. `install` (called by ``actorcore run`` before the
program starts) puts a finder in front of ``sys.meta_path`` that answers every ``ray`` and
``ray.*`` import of *this process only*: a name in `RAY_MODULES` is the actorcore module
itself (the same object, so ``ray.get is actorcore.get`` and ``ray.__name__`` is
``"actorcore"``; ``ray.__version__`` is actorcore's version: the version says what runs),
and any other ``ray.*`` name raises ModuleNotFoundError naming it. Nothing named ``ray`` is
installed anywhere, and a real Ray in the same environment still imports normally in every
other process.

How workers learn it. A worker serves tasks of several drivers (in a cluster started with
``actorcore start`` its workers are the node's, not the driver's), so neither its
environment nor its startup can say whether ``ray`` should mean actorcore. The decision
travels with the code instead: a process that has `install`\\ ed the alias ships each
function and actor class it exports (once per definition, never per call) wrapped by
`shippable`, and a worker that loads such a definition installs the alias before unpickling
it, so the definition's module (a program's own module imported by reference, with its
``import ray``) resolves there exactly as in the driver. Workers that only ever run code of
plain drivers never resolve ``ray``: a real Ray installed beside actorcore, and libraries
that probe ``importlib.util.find_spec("ray")`` to enable a Ray integration, are left alone.
Once a worker has installed the alias it keeps it for its life; a real Ray module already
imported in that process stays what ``sys.modules`` holds.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import pickle
import sys
from types import ModuleType

__all__ = ["RAY_MODULES", "install", "installed", "shippable"]

# ray.* module -> the module that answers for it. ``ray.ObjectRef``, ``ray.ActorHandle`` and
# the other API names come with the top level; ray.util's submodules are actorcore.util's.
RAY_MODULES: dict[str, str] = {
    "ray": "actorcore",
    "ray.actor": "actorcore.actor",
    "ray.cloudpickle": "cloudpickle",
    "ray.exceptions": "actorcore.exceptions",
    "ray.remote_function": "actorcore.remote_function",
    "ray.runtime_context": "actorcore.runtime_context",
    "ray.util": "actorcore.util",
    "ray.util.actor_pool": "actorcore.util.actor_pool",
    "ray.util.check_serialize": "actorcore.util.check_serialize",
    "ray.util.multiprocessing": "actorcore.util.multiprocessing",
    "ray.util.placement_group": "actorcore.util.placement_group",
    "ray.util.queue": "actorcore.util.queue",
    "ray.util.scheduling_strategies": "actorcore.util.scheduling_strategies",
}

# What ``import ray`` makes reachable as attributes in Ray (``ray.util.ActorPool``,
# ``ray.actor.exit_actor``...) without importing the submodule: loaded when the alias is.
_ATTRIBUTE_SUBMODULES = ("ray.actor", "ray.exceptions", "ray.runtime_context", "ray.util")


class _ExistingModule(importlib.abc.Loader):
    """Loads a ``ray.*`` name as a module that already exists, leaving the module unchanged."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module: ModuleType) -> None:
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
        raise ModuleNotFoundError(
            f"No module named {name!r}: actorcore runs Ray Core programs; {name} is not provided",
            name=name)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name is None or not (target == error.name or target.startswith(error.name + ".")):
            raise  # the module exists; something it imports does not
        raise ModuleNotFoundError(
            f"No module named {name!r}: it is actorcore's {target}, which this version of actorcore "
            "does not have", name=name) from None


_finder = _RayFinder()


def installed() -> bool:
    """Whether ``import ray`` means actorcore in this process."""
    return _finder in sys.meta_path


def install() -> ModuleType:
    """Make ``import ray`` and the ``ray.*`` names of `RAY_MODULES` resolve to actorcore in
    this process (idempotent); return the ``ray`` module (actorcore)."""
    if not installed():
        sys.meta_path.insert(0, _finder)
    ray = importlib.import_module("ray")
    for name in _ATTRIBUTE_SUBMODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:  # a part not in this version: importing it names what is missing
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
