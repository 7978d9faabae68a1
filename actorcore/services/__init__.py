"""Long-running services kept alive by ``actorcore supervise SPEC.toml``.

:func:`load_spec` / :func:`parse_spec` read and validate a TOML spec into plain data
(:class:`SupervisorSpec`, :class:`GroupSpec`, :class:`ServiceSpec`) before anything starts;
:func:`resolve_class` imports a service's class (the shape of the file: :mod:`.spec`). The
daemon itself is :mod:`.daemon` (with :mod:`.leadership`, :mod:`.tree`, :mod:`.instances`);
``actorcore supervise status`` reads :mod:`.status`; :func:`service_handle` calls the replicas
of a service in turn.
"""

from .handles import ServiceHandle, service_handle
from .spec import GroupSpec, ServiceSpec, SpecError, SupervisorSpec, load_spec, parse_spec, resolve_class

__all__ = [
    "GroupSpec",
    "ServiceHandle",
    "ServiceSpec",
    "SpecError",
    "SupervisorSpec",
    "load_spec",
    "parse_spec",
    "resolve_class",
    "service_handle",
]
