"""actorcore: Ray Core's programming model (tasks, actors, objects) built the Akka/Erlang way.

The Ray-compatible API arrives with later issues; today the package holds the actor kernel
(`actorcore.kernel`), the etcd control-store client (`actorcore.gcs`) and the command line.
Supervision trees live in the sibling package `supervisor`.
"""

import os as _os

# actorcore processes fork workers while gRPC threads run; grpc's fork handlers would only
# log "skipping fork() handlers" noise (and cannot make a forked gRPC usable anyway).
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from ._version import __version__  # noqa: E402

__all__ = ["__version__"]
