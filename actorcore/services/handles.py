"""A round-robin handle to a replicated service.

``actorcore supervise`` runs a service with ``replicas = N`` as the named actors ``name-0`` ...
``name-{N-1}`` (with one replica: the actor ``name``) in the namespace ``services``.
:func:`service_handle` finds them by ``actorcore.get_actor`` in any driver after
``actorcore.init(...)``, and ``handle.method.remote(*args, **kwargs)`` sends each call to the
next replica in turn::

    counter = service_handle("counter")
    refs = [counter.incr.remote() for _ in range(6)]   # counter-0, counter-1, counter-2, counter-0, ...

A replica that dies is not noticed by the handle: calls sent to it (before or after its death)
fail at ``get`` with ``ActorDiedError``, like any actor call. The daemon makes it anew under the
same name; :meth:`ServiceHandle.refresh` looks the replicas up again so that later calls reach
the new incarnation. ``.remote()`` itself refreshes the replicas and tries once more when it
raises (an unknown method's ``AttributeError`` excepted).
"""

from __future__ import annotations

import threading
from typing import Any

from .instances import NAMESPACE


class ServiceHandle:
    """The replicas of one service; ``handle.method.remote(...)`` calls them round robin."""

    def __init__(self, name: str, namespace: str = NAMESPACE) -> None:
        self.name, self.namespace = name, namespace
        self._lock = threading.Lock()
        self._actors: list[tuple[str, Any]] = []  # (actor name, handle)
        self._next = 0
        self.refresh()

    def refresh(self) -> None:
        """Looks the replicas up again (e.g. after one was restarted by the daemon)."""
        actors = self._discover(len(self._actors))
        if not actors:
            raise ValueError(f"no service {self.name!r} in namespace {self.namespace!r}: no actor "
                             f"{self.name!r} or {self.name + '-0'!r}; is `actorcore supervise` running it?")
        with self._lock:
            self._actors = actors

    def _discover(self, known: int) -> list[tuple[str, Any]]:
        import actorcore

        try:
            return [(self.name, actorcore.get_actor(self.name, self.namespace))]
        except ValueError:
            pass
        actors, index = [], 0
        while True:
            name = f"{self.name}-{index}"
            try:
                actors.append((name, actorcore.get_actor(name, self.namespace)))
            except ValueError:
                # Stop at the first gap, but not before the replicas seen last time: one of them
                # may be between incarnations (its name is free for a moment).
                if index >= known:
                    return actors
            index += 1

    @property
    def replicas(self) -> list[str]:
        """The replicas' actor names."""
        with self._lock:
            return [name for name, _ in self._actors]

    def __len__(self) -> int:
        with self._lock:
            return len(self._actors)

    def _pick(self) -> Any:
        with self._lock:
            self._next %= len(self._actors)
            _, actor = self._actors[self._next]
            self._next += 1
            return actor

    def __getattr__(self, method: str) -> _ServiceMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _ServiceMethod(self, method)

    def __repr__(self) -> str:
        return f"ServiceHandle({self.name!r}, namespace={self.namespace!r}, replicas={self.replicas})"


class _ServiceMethod:
    __slots__ = ("_service", "_method")

    def __init__(self, service: ServiceHandle, method: str) -> None:
        self._service, self._method = service, method

    def remote(self, *args, **kwargs) -> Any:
        try:
            return getattr(self._service._pick(), self._method).remote(*args, **kwargs)
        except AttributeError:
            raise
        except Exception:  # noqa: BLE001 - the service may have moved: refresh and retry once
            self._service.refresh()
            return getattr(self._service._pick(), self._method).remote(*args, **kwargs)


def service_handle(name: str, namespace: str = NAMESPACE) -> ServiceHandle:
    """A round-robin handle to the service ``name`` (its actors ``name`` or ``name-0``, ``name-1``, ...);
    raises ValueError when there is none."""
    return ServiceHandle(name, namespace)
