"""Long-running services kept alive by ``actorcore supervise SPEC.toml``.

:func:`load_spec` / :func:`parse_spec` read and validate a TOML spec into plain data
(:class:`SupervisorSpec`, :class:`GroupSpec`, :class:`ServiceSpec`) before anything starts;
:func:`resolve_class` imports a service's class (the shape of the file: :mod:`.spec`). The
daemon itself is :mod:`.daemon`; ``actorcore supervise-status`` reads :mod:`.status`.
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
