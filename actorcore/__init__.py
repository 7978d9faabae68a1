"""actorcore: Ray Core's programming model (tasks, actors, objects) built the Akka/Erlang way.

The Ray-compatible API arrives with later issues; today the package holds the actor kernel
(`actorcore.kernel`), the etcd control-store client (`actorcore.gcs`) and the command line.
Supervision trees live in the sibling package `supervisor`.
"""

from ._version import __version__

__all__ = ["__version__"]
