"""Long-running services kept alive by ``actorcore supervise SPEC.toml``.

For now the spec only: :func:`load_spec` / :func:`parse_spec` read and validate a TOML spec
into plain data (:class:`SupervisorSpec`, :class:`GroupSpec`, :class:`ServiceSpec`) before
anything starts; :func:`resolve_class` imports a service's class. The shape of the file is
documented in :mod:`actorcore.services.spec`.
"""

from .spec import GroupSpec, ServiceSpec, SpecError, SupervisorSpec, load_spec, parse_spec, resolve_class

__all__ = [
    "GroupSpec",
    "ServiceSpec",
    "SpecError",
    "SupervisorSpec",
    "load_spec",
    "parse_spec",
    "resolve_class",
]
