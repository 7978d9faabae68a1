"""The core of a driver or worker process: the CoreWorker and its parts.

Below the user API (`actorcore.api`, `actorcore.actor`, `actorcore.remote_function`) and
above the kernel, the node's protocol and the object store. It never imports the API.
"""

from .core_worker import CoreWorker
from .payloads import from_payload, to_payload

__all__ = ["CoreWorker", "from_payload", "to_payload"]
