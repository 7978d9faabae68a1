"""What a runtime env may say, checked before anything starts, and how two of them combine
(docs/architecture.md, "Runtime environments").

`validate` takes a user's ``runtime_env`` (a dict, or Ray's `RuntimeEnv`) and answers a plain,
normalized copy, or raises TypeError/ValueError naming the key and what it takes. Keys are
Ray's: ``env_vars``, ``working_dir``, ``py_modules``, ``pip`` (also ``uv``, the same with uv's
name), ``excludes`` and ``config``; Ray's keys for what actorcore does not build (conda,
containers, ...) are refused with the reason, and unknown keys with the known ones.

`merge` is Ray's rule for a job's runtime env and a task's or actor's: the inner one's keys
replace the outer one's, except ``env_vars``, which are merged (the inner value wins).
`canonical` is the JSON that names a runtime env: workers are pooled by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .packaging import URI_SCHEME

__all__ = ["KEYS", "canonical", "merge", "validate"]

KEYS = ("env_vars", "working_dir", "py_modules", "pip", "uv", "excludes", "config")
_UNBUILT = {
    "conda": "conda environments are not built by actorcore: use pip (a virtual environment per requirement set)",
    "container": "containers are not built by actorcore: run the nodes themselves in the image (see deploy/)",
    "image_uri": "containers are not built by actorcore: run the nodes themselves in the image (see deploy/)",
    "java_jars": "actorcore runs Python only",
    "nsight": "actorcore has no Nsight profiling integration",
    "mpi": "actorcore has no MPI integration",
    "py_executable": "actorcore starts workers with the node's Python (or a pip environment's)",
    "worker_process_setup_hook": "not supported by actorcore yet",
}
_CONFIG_KEYS = ("setup_timeout_seconds", "eager_install")
_PIP_KEYS = ("packages", "pip_check", "pip_version")


def validate(runtime_env: Mapping | None, where: str = "runtime_env") -> dict[str, Any]:
    """A normalized copy of `runtime_env` (None: {}); TypeError/ValueError naming what is wrong."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(runtime_env).__name__}")
    checked: dict[str, Any] = {}
    for key, value in runtime_env.items():
        if key in _UNBUILT:
            raise ValueError(f"{where}: {key!r} is not supported: {_UNBUILT[key]}")
        if key not in KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; the keys are {', '.join(KEYS)}")
        if value is None:
            continue
        checked[key] = _CHECKS[key](value, f"{where}[{key!r}]")
    if "pip" in checked and "uv" in checked:
        raise ValueError(f"{where}: give 'pip' or 'uv', not both (they install the same way here)")
    if "uv" in checked:
        checked["pip"] = checked.pop("uv")
    return checked


def merge(outer: Mapping[str, Any], inner: Mapping[str, Any]) -> dict[str, Any]:
    """`inner` (a task's or actor's) over `outer` (its job's or parent's): keys replaced, env_vars merged."""
    merged = {**outer, **inner}
    if "env_vars" in outer and "env_vars" in inner:
        merged["env_vars"] = {**outer["env_vars"], **inner["env_vars"]}
    return merged


def canonical(runtime_env: Mapping[str, Any]) -> str:
    """The JSON that names `runtime_env` ("" for the empty one): equal envs, equal names."""
    return json.dumps(runtime_env, sort_keys=True, separators=(",", ":")) if runtime_env else ""


def _str_dict(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a dict of str -> str, got {type(value).__name__}")
    for name, setting in value.items():
        if not isinstance(name, str) or not isinstance(setting, str):
            raise TypeError(f"{where} must map str to str; {name!r}: {setting!r} is not (write numbers as strings)")
    return dict(value)


def _path_or_uri(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{where} must be a local path or a {URI_SCHEME} URI (str), got {value!r}")
    scheme = value.split("://", 1)[0] if "://" in value else None
    if scheme is not None and f"{scheme}://" != URI_SCHEME:
        raise ValueError(f"{where}: {value!r}: remote URIs ({scheme}://) are not fetched by actorcore; give a local "
                         "directory or .zip, which is uploaded to the cluster")
    return value


def _paths(value: Any, where: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{where} must be a list of local paths or {URI_SCHEME} URIs, got {value!r}")
    return [_path_or_uri(entry, f"{where}[{index}]") for index, entry in enumerate(value)]


def _patterns(value: Any, where: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise TypeError(f"{where} must be a list of gitignore patterns (str), got {value!r}")
    return list(value)


def _pip(value: Any, where: str) -> dict[str, Any]:
    """``{"packages": [...], "pip_check": bool, ...}``; a list is its packages, a str a requirements file."""
    if isinstance(value, str):
        try:
            with open(value) as file:
                lines = [line.strip() for line in file]
        except OSError as error:
            raise ValueError(f"{where}: cannot read the requirements file {value!r}: {error.strerror}") from None
        value = [line for line in lines if line and not line.startswith("#")]
    if isinstance(value, (list, tuple)):
        value = {"packages": list(value)}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a list of requirements, a requirements file or a dict, got {value!r}")
    _refuse_unknown(value, _PIP_KEYS, where)
    packages = value.get("packages")
    if isinstance(packages, str) or not isinstance(packages, (list, tuple)) or not packages or not all(
            isinstance(p, str) and p.strip() for p in packages):
        raise TypeError(f"{where}['packages'] must be a non-empty list of requirement strings, got {packages!r}")
    checked = {"packages": [p.strip() for p in packages]}
    if "pip_check" in value:
        if not isinstance(value["pip_check"], bool):
            raise TypeError(f"{where}['pip_check'] must be a bool, got {value['pip_check']!r}")
        checked["pip_check"] = value["pip_check"]
    if value.get("pip_version") is not None:
        checked["pip_version"] = str(value["pip_version"])
    return checked


def _refuse_unknown(value: Mapping, keys: tuple[str, ...], where: str) -> None:
    unknown = set(value) - set(keys)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, sorted(unknown)))}; "
                         f"the keys are {', '.join(keys)}")


def _config(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(value).__name__}")
    _refuse_unknown(value, _CONFIG_KEYS, where)
    checked = {}
    timeout = value.get("setup_timeout_seconds")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int) or (timeout <= 0 and timeout != -1):
            raise ValueError(f"{where}['setup_timeout_seconds'] must be an int > 0, or -1 for no limit, "
                             f"got {timeout!r}")
        checked["setup_timeout_seconds"] = timeout
    if value.get("eager_install") is not None:
        if not isinstance(value["eager_install"], bool):
            raise TypeError(f"{where}['eager_install'] must be a bool, got {value['eager_install']!r}")
        checked["eager_install"] = value["eager_install"]
    return checked


_CHECKS = {
    "env_vars": _str_dict,
    "working_dir": _path_or_uri,
    "py_modules": _paths,
    "pip": _pip,
    "uv": _pip,
    "excludes": _patterns,
    "config": _config,
}
