"""Packing a local directory or zip file into a content-addressed package (docs/architecture.md,
"Runtime environments").

A package is a zip whose name is the SHA-256 of its bytes: ``pkg://<sha256>.zip``. Packing is
deterministic (files in sorted order, fixed timestamps, permission bits kept), so the same
directory packs to the same URI on every machine and is uploaded and extracted once. Files the
directory's own ``.gitignore`` or the runtime env's ``excludes`` match (gitignore patterns,
relative to the directory) are left out, and so is ``.git``; a package over `MAX_PACKAGE_BYTES`
is refused with its size and the way out. `pack_local_paths` does this for every local path
of a runtime env (a driver's `init`, a task's option, a job submission's client).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pathspec

__all__ = ["MAX_PACKAGE_BYTES", "URI_SCHEME", "PackageError", "pack", "pack_directory", "pack_local_paths",
           "package_uris", "sha_of_uri"]

#: The largest package (zipped) a runtime env may ship: 100 MiB.
MAX_PACKAGE_BYTES = 100 * 1024 * 1024
URI_SCHEME = "pkg://"
_ALWAYS_EXCLUDED = [".git/"]
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest timestamp: every entry gets it, for a stable hash


class PackageError(ValueError):
    """A directory or zip cannot be a package (its message names the path and why)."""


def pack(path: str | os.PathLike, excludes: Sequence[str] = (), *, what: str = "working_dir",
         max_bytes: int | None = None, top_level: bool = False) -> tuple[str, bytes]:
    """``(uri, zip bytes)`` of a local directory or ``.zip`` file (or ``.whl``: a zip too), for
    the runtime env key `what`. `top_level`: a directory's files go under its own name (a
    ``py_modules`` package: its extraction's parent goes on ``sys.path``). `max_bytes`: the
    limit (default `MAX_PACKAGE_BYTES`)."""
    max_bytes = MAX_PACKAGE_BYTES if max_bytes is None else max_bytes
    source = Path(path).expanduser()
    if source.is_dir():
        return pack_directory(source, excludes, what=what, max_bytes=max_bytes, top_level=top_level)
    if source.is_file() and source.suffix in (".zip", ".whl"):
        data = source.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise PackageError(f"runtime_env {what} {str(path)!r} is not a valid zip file")
        _check_size(data, source, what, max_bytes)
        return _uri(data), data
    if not source.exists():
        raise PackageError(f"runtime_env {what} {str(path)!r} does not exist")
    raise PackageError(f"runtime_env {what} {str(path)!r} is neither a directory nor a .zip or .whl file")


def pack_directory(directory: str | os.PathLike, excludes: Sequence[str] = (), *, what: str = "working_dir",
                   max_bytes: int | None = None, top_level: bool = False) -> tuple[str, bytes]:
    """``(uri, zip bytes)`` of `directory`'s files, less those `excludes` or its .gitignore match
    (under the directory's own name with `top_level`)."""
    max_bytes = MAX_PACKAGE_BYTES if max_bytes is None else max_bytes
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise PackageError(f"runtime_env {what} {str(directory)!r} is not a directory")
    if isinstance(excludes, str) or not all(isinstance(pattern, str) for pattern in excludes):
        raise PackageError(f"runtime_env excludes must be a list of gitignore patterns (str), got {excludes!r}")
    patterns = [*_ALWAYS_EXCLUDED, *_gitignore(root), *excludes]
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for relative in _files(root, spec):
            file = root / relative
            mode = file.stat().st_mode
            total += file.stat().st_size
            if total > 4 * max_bytes:  # far over even before compression: stop reading
                break
            entry = zipfile.ZipInfo(f"{root.name}/{relative}" if top_level else relative, date_time=_EPOCH)
            entry.external_attr = (stat.S_IFREG | stat.S_IMODE(mode)) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, file.read_bytes())
    data = buffer.getvalue()
    _check_size(data, root, what, max_bytes, total)
    return _uri(data), data


def pack_local_paths(runtime_env: dict[str, Any], packed: dict[tuple, str] | None = None
                     ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """`runtime_env` (checked) with its local paths packed and named by their URIs, and the
    packages made (URI -> bytes); PackageError (a ValueError) naming a path that cannot be
    packed. `packed` remembers what was packed already, by (key, path, excludes)."""
    packages: dict[str, bytes] = {}
    excludes = tuple(runtime_env.pop("excludes", ()))

    def package(what: str, path_or_uri: str) -> str:
        if path_or_uri.startswith(URI_SCHEME):
            return path_or_uri
        path = str(Path(path_or_uri).expanduser().resolve())
        cache_key = (what, path, excludes)
        if packed is not None and cache_key in packed:
            return packed[cache_key]
        uri, data = pack(path, excludes, what=what, top_level=what == "py_modules" and Path(path).is_dir())
        packages[uri] = data
        if packed is not None:
            packed[cache_key] = uri
        return uri

    if "working_dir" in runtime_env:
        runtime_env["working_dir"] = package("working_dir", runtime_env["working_dir"])
    if "py_modules" in runtime_env:
        runtime_env["py_modules"] = [package("py_modules", entry) for entry in runtime_env["py_modules"]]
    return runtime_env, packages


def sha_of_uri(uri: str) -> str:
    """The SHA-256 (hex) a package URI names; ValueError for a URI that is not a package's."""
    name = uri[len(URI_SCHEME):] if uri.startswith(URI_SCHEME) else ""
    sha = name[:-len(".zip")] if name.endswith(".zip") else ""
    if len(sha) != 64 or any(char not in "0123456789abcdef" for char in sha):
        raise ValueError(f"{uri!r} is not a package URI ({URI_SCHEME}<sha256>.zip)")
    return sha


def package_uris(runtime_env: Any) -> list[str]:
    """The package URIs a runtime env (a dict, or its canonical JSON; "" for none) names: its
    ``working_dir`` and ``py_modules`` entries that are well-formed package URIs, in that order."""
    if isinstance(runtime_env, str):
        runtime_env = json.loads(runtime_env) if runtime_env else {}
    if not isinstance(runtime_env, dict):
        return []
    named = [runtime_env.get("working_dir"), *(runtime_env.get("py_modules") or ())]
    return [uri for uri in named if isinstance(uri, str) and _is_package_uri(uri)]


def _is_package_uri(uri: str) -> bool:
    try:
        sha_of_uri(uri)
    except ValueError:
        return False
    return True


def _uri(data: bytes) -> str:
    return f"{URI_SCHEME}{hashlib.sha256(data).hexdigest()}.zip"


def _check_size(data: bytes, source: Path, what: str, max_bytes: int, unpacked: int | None = None) -> None:
    if len(data) <= max_bytes and (unpacked is None or unpacked <= 4 * max_bytes):
        return
    size = f"{len(data) / 2**20:.1f} MiB packed" if unpacked is None or unpacked <= 4 * max_bytes else (
        f"over {4 * max_bytes / 2**20:.0f} MiB of files")
    raise PackageError(
        f"runtime_env {what} {str(source)!r} is {size}, over the {max_bytes / 2**20:.0f} MiB a package may be: "
        "leave large files out with runtime_env={'excludes': [...]} (gitignore patterns) or a .gitignore, "
        "and put large data in the object store or shared storage")


def _gitignore(root: Path) -> list[str]:
    ignore = root / ".gitignore"
    return ignore.read_text(errors="replace").splitlines() if ignore.is_file() else []


def _files(root: Path, spec: pathspec.GitIgnoreSpec) -> list[str]:
    """The relative paths (with '/') of the regular files under `root` that `spec` does not match,
    sorted; an excluded directory is not walked."""
    found = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        relative_dir = os.path.relpath(directory, root)
        prefix = "" if relative_dir == "." else relative_dir.replace(os.sep, "/") + "/"
        subdirectories[:] = [name for name in subdirectories if not spec.match_file(f"{prefix}{name}/")]
        for name in files:
            relative = f"{prefix}{name}"
            if os.path.isfile(os.path.join(directory, name)) and not spec.match_file(relative):
                found.append(relative)
    return sorted(found)
