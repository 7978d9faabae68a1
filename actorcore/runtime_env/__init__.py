"""Runtime environments: what a task's, an actor's or a job's worker needs besides the cluster's
own code (docs/architecture.md, "Runtime environments").

`packaging` packs a local directory (a ``working_dir`` or a ``py_modules`` entry) into a
content-addressed zip, `package_store` keeps packages in etcd for every node, and
`package_cache` extracts them once per node. `RuntimeEnv` and `RuntimeEnvConfig` are Ray's
names for a runtime env and its ``config`` (``from ray.runtime_env import RuntimeEnv``): dicts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]


class RuntimeEnv(dict):
    """A runtime env as Ray spells it: ``RuntimeEnv(working_dir=..., env_vars={...})`` is the dict
    of those keys (checked where it is used: `init`, ``.options()``, ``@remote``)."""

    def __init__(self, **keys: Any) -> None:
        super().__init__({key: value for key, value in keys.items() if value is not None})


class RuntimeEnvConfig(dict):
    """A runtime env's ``config``: ``RuntimeEnvConfig(setup_timeout_seconds=60)``."""

    def __init__(self, **keys: Any) -> None:
        super().__init__({key: value for key, value in keys.items() if value is not None})
