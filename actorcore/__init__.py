"""actorcore: Ray Core's programming model (tasks, actors, objects) built the Akka/Erlang way.

`import actorcore as ray` runs a Ray Core program: this module re-exports Ray's API names.
Inside, every component is an actor of `actorcore.kernel`; supervision trees come from the
sibling package `supervisor`; etcd is the control store (`actorcore.gcs`).
"""

import os as _os

# actorcore processes fork workers while gRPC threads run; grpc's fork handlers would only
# log "skipping fork() handlers" noise (and cannot make a forked gRPC usable anyway).
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from ._version import __version__

# The public names load on first use (PEP 562): node and worker processes import this
# package too, and start ~0.1 s sooner without the API modules they may never touch.
_LAZY = {
    "ActorClass": "actor", "ActorHandle": "actor", "get_actor": "actor", "kill": "actor", "method": "actor",
    "ObjectRef": "object_ref", "RemoteFunction": "remote_function",
    "DynamicObjectRefGenerator": "core.streams", "ObjectRefGenerator": "core.streams",
    "available_resources": "api", "cancel": "api", "cluster_resources": "api", "get": "api",
    "get_gpu_ids": "api", "get_runtime_context": "api", "init": "api", "is_initialized": "api", "nodes": "api",
    "put": "api", "shutdown": "api", "wait": "api",
    "timeline": "task_timeline",
    # beyond Ray: supervision for users (actorcore/supervision.py)
    "ChildSpec": "supervision", "SupervisionGroup": "supervision", "supervise": "supervision",
    "watch": "supervision", "supervise_gang": "supervision",
}


def __getattr__(name: str):
    import importlib

    if name in ("exceptions", "actor"):  # the submodule itself (importing it sets the attribute)
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'actorcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def remote(*args, **options):
    """`@remote`, or `@remote(num_cpus=..., ...)`, on a function or a class.

    Bare, ``args`` is the one function or class decorated: it becomes a `RemoteFunction` or an
    `ActorClass`. With keyword options only (those of ``.options()``), it returns the decorator.
    Raises TypeError for anything else.
    """
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError(
            "remote() takes a function or class, or only keyword options: @remote or @remote(num_cpus=1)"
        )

    def decorate(function_or_class):
        return _make_remote(function_or_class, options)

    return decorate


def _make_remote(target, options: dict):
    from .actor import ActorClass
    from .remote_function import RemoteFunction

    if isinstance(target, type):
        return ActorClass(target, options)
    if callable(target):
        return RemoteFunction(target, options)
    raise TypeError(f"@remote applies to functions and classes, not {type(target).__qualname__}")


__all__ = [
    "ActorClass",
    "ActorHandle",
    "ChildSpec",
    "DynamicObjectRefGenerator",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "SupervisionGroup",
    "__version__",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "supervise",
    "supervise_gang",
    "timeline",
    "wait",
    "watch",
]
