"""init() finds the machine's GPUs as Ray does: the ids CUDA_VISIBLE_DEVICES names, else the
GPUs nvidia-smi lists, else none; num_gpus overrides the count. nvidia-smi is the machine's
tool: a script of that name on PATH stands for a machine with two GPUs.
"""

from __future__ import annotations

import os
import stat

import pytest

import actorcore as ray

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def shutdown_after():
    yield
    ray.shutdown()


@ray.remote
def devices():
    return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids(), ray.get_runtime_context().get_accelerator_ids()


def test_nvidia_smi_gpus_are_the_default(tmp_path, monkeypatch, shutdown_after):
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-0)'\necho 'GPU 1: Tesla T4 (UUID: GPU-1)'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ray.init(num_cpus=1)
    total = ray.cluster_resources()
    assert (total["GPU"], total["accelerator_type:T4"]) == (2.0, 1.0)
    assert ray.get(devices.options(num_gpus=2).remote(), timeout=60) == ("0,1", [0, 1], {"GPU": ["0", "1"]})
    # accelerator_type asks for a node with GPUs of that model, as in Ray
    assert ray.get(devices.options(num_gpus=1, accelerator_type="T4").remote(), timeout=60)[1] in ([0], [1])
    with pytest.warns(UserWarning, match=r"'accelerator_type:V100': 0.001\}, but no node"):
        ref = devices.options(accelerator_type="V100").remote()
    assert ray.wait([ref], timeout=1) == ([], [ref])
    ray.cancel(ref)


def test_cuda_visible_devices_names_the_gpus_and_get_gpu_ids_gives_those_names(monkeypatch, shutdown_after):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    ray.init(num_cpus=1, num_gpus=2)  # the first two of them
    assert ray.cluster_resources()["GPU"] == 2.0
    # As in Ray: strings when CUDA_VISIBLE_DEVICES named the devices; a task without GPUs
    # sees the variable as the worker inherited it.
    assert ray.get(devices.options(num_gpus=2).remote(), timeout=60) == ("2,5", ["2", "5"], {"GPU": ["2", "5"]})
    assert ray.get(devices.remote(), timeout=60) == ("2,5,7", [], {"GPU": []})
    ray.shutdown()
    ray.init(num_cpus=1)  # all of them
    assert ray.cluster_resources()["GPU"] == 3.0


def test_more_gpus_than_cuda_visible_devices_names_are_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    with pytest.raises(ValueError, match=r"cannot give the node 4 GPU\(s\): CUDA_VISIBLE_DEVICES contains"):
        ray.init(num_cpus=1, num_gpus=4)
    assert not ray.is_initialized()


def test_bad_init_quantities_are_refused():
    with pytest.raises(ValueError, match=r"init\(_memory=...\) takes a number >= 0, got -5"):
        ray.init(num_cpus=1, _memory=-5)
    with pytest.raises(TypeError, match=r"init\(num_gpus=...\) takes a number >= 0, got '2'"):
        ray.init(num_cpus=1, num_gpus="2")
    assert not ray.is_initialized()
