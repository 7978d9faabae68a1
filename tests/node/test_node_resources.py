"""What a node offers besides CPUs: its GPUs as CUDA_VISIBLE_DEVICES or nvidia-smi show them
(or as many as the user declares), and its logical memory.

nvidia-smi is the machine's tool: these tests put a script of that name on PATH, standing for
a machine with NVIDIA GPUs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from actorcore.node_resources import (
    MEMORY_SHARE,
    accelerator_type,
    accelerator_type_resources,
    default_memory,
    detect_gpu_ids,
    resolve_gpu_ids,
)

pytestmark = pytest.mark.timeout(30)

SMI_LISTING = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1d2f3c4e-0000-0000-0000-000000000000)
  MIG 1g.5gb      Device  0: (UUID: MIG-2e3f4a5b-0000-0000-0000-000000000000)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-5a6b7c8d-0000-0000-0000-000000000000)
"""


def machine(tmp_path: Path, *, smi: str | None = None, cuda: str | None = None) -> dict:
    """An environment whose PATH holds only an nvidia-smi running `smi` (a shell script body),
    if given, and whose CUDA_VISIBLE_DEVICES is `cuda`, if given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi is not None:
        tool = bin_dir / "nvidia-smi"
        tool.write_text(f"#!/bin/sh\n{smi}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    # The shell's tools too when there is an nvidia-smi script: ours comes first.
    environ = {"PATH": f"{bin_dir}{os.pathsep}{os.defpath}" if smi is not None else str(bin_dir)}
    if cuda is not None:
        environ["CUDA_VISIBLE_DEVICES"] = cuda
    return environ


def test_nvidia_smi_lists_the_gpus_numbered_from_zero(tmp_path):
    environ = machine(tmp_path, smi=f'[ "$1" = "-L" ] || exit 2\ncat <<EOF\n{SMI_LISTING}EOF')
    assert detect_gpu_ids(environ) == ["0", "1"]  # a MIG line is no GPU of its own


def test_cuda_visible_devices_names_the_gpus_even_with_nvidia_smi(tmp_path):
    environ = machine(tmp_path, smi=f"cat <<EOF\n{SMI_LISTING}EOF", cuda="3, 1,GPU-abc")
    assert detect_gpu_ids(environ) == ["3", "1", "GPU-abc"]
    assert detect_gpu_ids({**environ, "CUDA_VISIBLE_DEVICES": ""}) == []


def test_no_gpus_without_nvidia_smi_or_when_it_fails(tmp_path):
    assert detect_gpu_ids(machine(tmp_path)) == []
    failing = tmp_path / "failing"
    failing.mkdir()
    assert detect_gpu_ids(machine(failing, smi="echo 'NVIDIA-SMI has failed' >&2; exit 9")) == []


def test_a_declared_count_overrides_detection(tmp_path):
    environ = machine(tmp_path, smi=f"cat <<EOF\n{SMI_LISTING}EOF")
    assert resolve_gpu_ids(None, environ) == ["0", "1"]
    assert resolve_gpu_ids(4, environ) == ["0", "1", "2", "3"]  # declared GPUs need no hardware
    assert resolve_gpu_ids(0, environ) == []
    assert resolve_gpu_ids(1.5, environ) == ["0", "1"]


def test_a_declared_count_takes_the_first_visible_devices_and_no_more_than_there_are():
    environ = {"CUDA_VISIBLE_DEVICES": "2,5,7"}
    assert resolve_gpu_ids(2, environ) == ["2", "5"]
    with pytest.raises(ValueError, match=r"cannot give the node 4 GPU\(s\): CUDA_VISIBLE_DEVICES contains "
                                         r"\['2', '5', '7'\]"):
        resolve_gpu_ids(4, environ)
    with pytest.raises(ValueError, match="num_gpus must be >= 0"):
        resolve_gpu_ids(-1, environ)


@pytest.mark.parametrize(("name", "model"), [
    # as Ray 2.60 names them (checked with its NVIDIA accelerator manager)
    ("Tesla V100-SXM2-16GB", "V100"), ("NVIDIA A100-SXM4-40GB", "A100"), ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA RTX PRO 6000 Blackwell", "RTX-PRO-6000"), ("NVIDIA GeForce RTX 4090", "GeForce-RTX-4090"),
    ("NVIDIA L4", "L4"), ("Tesla T4", "T4"), ("NVIDIA A10G", "A10G"), ("Quadro RTX 8000", "RTX-8000"),
])
def test_the_accelerator_type_is_the_model_in_the_gpu_name(name, model):
    assert accelerator_type(name) == model


def test_a_node_with_gpus_offers_its_accelerator_type(tmp_path):
    environ = machine(tmp_path, smi=f"cat <<EOF\n{SMI_LISTING}EOF")
    assert accelerator_type_resources(2, environ) == {"accelerator_type:A100": 1.0}
    assert accelerator_type_resources(0, environ) == {}  # no GPUs given to the node: no type either
    assert accelerator_type_resources(2, {"PATH": str(tmp_path / "bin")}) == {}  # no nvidia-smi


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_default_memory_is_a_share_of_the_available_memory(tmp_path):
    write(tmp_path, "proc/meminfo", "MemTotal:       16000000 kB\nMemFree:         2000000 kB\n"
                                    "MemAvailable:   10000000 kB\nCached:          7000000 kB\n")
    assert default_memory(tmp_path) == int(10_000_000 * 1024 * MEMORY_SHARE)
    assert MEMORY_SHARE == 0.7  # Ray keeps 30% of the available memory for its object store


def test_default_memory_in_a_cgroup_counts_its_limit_and_usage_without_the_page_cache(tmp_path):
    write(tmp_path, "proc/meminfo", "MemTotal:       16000000 kB\nMemAvailable:   15000000 kB\n")
    gib = 1024**3
    write(tmp_path, "sys/fs/cgroup/memory.max", f"{4 * gib}\n")
    write(tmp_path, "sys/fs/cgroup/memory.current", f"{3 * gib}\n")
    write(tmp_path, "sys/fs/cgroup/memory.stat", f"anon {gib}\nactive_file {gib}\ninactive_file {gib}\n")
    assert default_memory(tmp_path) == int(3 * gib * MEMORY_SHARE)  # 4 GiB limit - 1 GiB used
    write(tmp_path, "sys/fs/cgroup/memory.max", "max\n")  # no limit: the machine's memory
    assert default_memory(tmp_path) == int((16_000_000 * 1024 - gib) * MEMORY_SHARE)


def test_default_memory_of_this_machine_is_positive_and_below_its_total():
    with open("/proc/meminfo") as meminfo:
        total = int(meminfo.readline().split()[1]) * 1024
    assert 0 < default_memory() < total
    assert os.path.exists("/proc/meminfo")
