"""What a node offers besides its CPUs: its NVIDIA GPUs (by device id) and its logical memory.

Both are resolved on the node's machine by whoever starts the node (``init()`` and
``actorcore start``), as Ray resolves them (docs/architecture.md, "GPUs and memory"):

- GPUs: the ids in ``CUDA_VISIBLE_DEVICES`` if it is set, else one per line ``GPU n: ...`` of
  ``nvidia-smi -L`` (ids 0..n-1), else none. A count given by the user (``num_gpus``,
  ``--num-gpus``) overrides the detection: the first ones of ``CUDA_VISIBLE_DEVICES``, else
  ids 0..N-1 (declared GPUs need no hardware). A device a fraction is given of still gets an id.
- the GPUs' model (`accelerator_type`, e.g. "V100" for "Tesla V100-SXM2-16GB"), from the first
  GPU nvidia-smi lists: a node with GPUs offers one ``accelerator_type:<model>`` resource, which
  the ``accelerator_type`` option of a task or actor asks 0.001 of (as Ray names and asks it).
- memory: a logical resource in bytes, 70% of the memory available now (total, or the
  cgroup's limit, minus what is used apart from the page cache). Ray gives the other 30% to its
  object store; actorcore's objects also live in memory (/dev/shm), so it keeps the same share.
- the object store's capacity (`default_object_store_memory`): that other 30% of the memory
  available, but no more than 95% of what /dev/shm has free (Docker gives it 64 MiB), as Ray
  sizes its store. The arena is a sparse file: the node uses what its objects use, up to it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ACCELERATOR_TYPE_PREFIX", "CUDA_VISIBLE_DEVICES", "MEMORY_SHARE", "MIN_OBJECT_STORE_MEMORY",
           "OBJECT_STORE_SHARE", "accelerator_type", "accelerator_type_resources", "default_memory",
           "default_object_store_memory", "detect_gpu_ids", "resolve_gpu_ids", "visible_gpu_ids"]

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
#: a node's ``accelerator_type:<model>`` resource, and what the ``accelerator_type`` option asks for
ACCELERATOR_TYPE_PREFIX = "accelerator_type:"
#: the share of the available memory a node offers as its ``memory`` resource by default
MEMORY_SHARE = 0.7
#: the share of the available memory a node's object store holds by default
OBJECT_STORE_SHARE = 0.3
#: the smallest object store a node accepts (a few large objects; the rest spills)
MIN_OBJECT_STORE_MEMORY = 1 << 20
_SHM_SHARE = 0.95
_NVIDIA_SMI_TIMEOUT = 10.0


def visible_gpu_ids(environ: Mapping[str, str] = os.environ) -> list[str] | None:
    """The device ids ``CUDA_VISIBLE_DEVICES`` names (``[]`` if it is empty), or None if unset."""
    value = environ.get(CUDA_VISIBLE_DEVICES)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def detect_gpu_ids(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The NVIDIA GPUs of this machine as this process may use them (see the module's docstring)."""
    visible = visible_gpu_ids(environ)
    if visible is not None:
        return visible
    return [str(index) for index in range(len(_listed_gpus(environ)))]


def accelerator_type_resources(gpu_count: float, environ: Mapping[str, str] = os.environ) -> dict[str, float]:
    """``{"accelerator_type:<model>": 1}`` for a node with GPUs whose model nvidia-smi names, else {}."""
    names = _listed_gpus(environ) if gpu_count > 0 else []
    model = accelerator_type(names[0]) if names else None
    return {f"{ACCELERATOR_TYPE_PREFIX}{model}": 1.0} if model else {}


def accelerator_type(gpu_name: str) -> str | None:
    """The model in an NVIDIA GPU's name, as Ray names it: the words after the brand up to the
    first one with a digit ("Tesla V100-SXM2-16GB" -> "V100", "NVIDIA RTX PRO 6000" ->
    "RTX-PRO-6000"); a name without such a model, the name without "NVIDIA" ("GeForce-RTX-4090")."""
    model = []
    for word in gpu_name.split()[1:]:
        head = word.split("-")[0]
        if not (head.isalnum() and head.upper() == head):
            break
        model.append(head)
        if any(c.isdigit() for c in head):
            return "-".join(model)
        if not head.isalpha():
            break
    return "-".join(gpu_name.removeprefix("NVIDIA").split()) or None


def _listed_gpus(environ: Mapping[str, str]) -> list[str]:
    """The names of the GPUs ``nvidia-smi -L`` lists (none without it, or when it fails)."""
    smi = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT,
                                 check=True, env=dict(environ)).stdout
    except (OSError, subprocess.SubprocessError):  # no driver, or it hangs: no usable GPU
        return []
    # "GPU 0: Tesla T4 (UUID: GPU-...)"; the MIG devices of a GPU are indented under it
    return [line.partition(": ")[2].rpartition(" (UUID")[0].strip() for line in listing.splitlines()
            if line.startswith("GPU ")]


def resolve_gpu_ids(num_gpus: float | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The device ids of a node given ``num_gpus`` (None: detect them).

    Raises ValueError if ``num_gpus`` is negative or more than ``CUDA_VISIBLE_DEVICES`` names.
    """
    if num_gpus is None:
        return detect_gpu_ids(environ)
    if not num_gpus >= 0:
        raise ValueError(f"num_gpus must be >= 0, got {num_gpus!r}")
    needed = math.ceil(num_gpus)
    visible = visible_gpu_ids(environ)
    if visible is None:
        return [str(index) for index in range(needed)]
    if needed > len(visible):
        raise ValueError(f"cannot give the node {num_gpus:g} GPU(s): {CUDA_VISIBLE_DEVICES} contains {visible}")
    return visible[:needed]


def default_memory(root: Path = Path("/")) -> int:
    """The node's ``memory`` resource in bytes when none is given (see the module's docstring)."""
    return int(_available_memory(root) * MEMORY_SHARE)


def default_object_store_memory(root: Path = Path("/")) -> int:
    """The node's object store capacity in bytes when none is given (see the module's docstring)."""
    capacity = _available_memory(root) * OBJECT_STORE_SHARE
    try:
        shm = os.statvfs(root / "dev/shm")
        capacity = min(capacity, shm.f_bavail * shm.f_frsize * _SHM_SHARE)
    except OSError:
        pass
    return max(MIN_OBJECT_STORE_MEMORY, int(capacity) & -4096)


def _available_memory(root: Path) -> int:
    meminfo = _read_meminfo(root / "proc/meminfo")
    total = meminfo.get("MemTotal", 0)
    used = total - meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    cgroup = root / "sys/fs/cgroup"
    for usage_file, stat_file, limit_file, prefix in (
            ("memory/memory.usage_in_bytes", "memory/memory.stat", "memory/memory.limit_in_bytes", "total_"),
            ("memory.current", "memory.stat", "memory.max", "")):
        usage = _read_int(cgroup / usage_file)
        stat = _read_stat(cgroup / stat_file)
        if usage is None or stat is None:
            continue
        used = usage - stat.get(f"{prefix}inactive_file", 0) - stat.get(f"{prefix}active_file", 0)
        limit = _read_int(cgroup / limit_file)  # "max": no limit
        if limit is not None:
            total = min(total, limit)
        break
    return max(0, total - max(used, 0))


def _read_meminfo(path: Path) -> dict[str, int]:
    values = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return values


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_stat(path: Path) -> dict[str, int] | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    stat = {}
    for line in lines:
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            stat[name] = int(value)
    return stat
