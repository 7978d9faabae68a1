"""Render the Kubernetes manifests of an actorcore cluster (docs/architecture.md, "Deploying on
Kubernetes"): head.yaml and workers.yaml as they are, or with another image, worker count,
node sizes, an existing etcd, and the credentials' Secret.

    python deploy/kubernetes/render.py --workers 3 --worker-cpus 4 > cluster.yaml
    python deploy/kubernetes/render.py --credentials credentials.json | kubectl apply -f -

A node's size is given once (its flags) and everything that follows from it is set here: the
container's cpu (= --num-cpus) and memory (= --memory + the /dev/shm volume + `NODE_OVERHEAD`,
requests equal to limits), and the /dev/shm volume (a memory-backed emptyDir of
--object-store-memory + `SHM_HEADROOM`). It needs PyYAML only (no actorcore), and writes YAML
without the templates' comments.
"""

from __future__ import annotations

import argparse
import base64
import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = [
    "CREDENTIALS_KEY",
    "CREDENTIALS_PATH",
    "ETCD_CLIENT_DIR",
    "ETCD_CLIENT_SECRET",
    "HEAD_SERVICE",
    "NODE_OVERHEAD",
    "SECRET_NAME",
    "SHM_HEADROOM",
    "NodeSize",
    "load_templates",
    "main",
    "render",
    "secret",
]

TEMPLATES = Path(__file__).resolve().parent
MIB = 2**20
SHM_HEADROOM = 64 * MIB  # /dev/shm beyond the object store (segments' rounding, other users)
NODE_OVERHEAD = 512 * MIB  # the node's and its workers' own memory, beyond --memory
HEAD_SERVICE = "actorcore-head"
ETCD_PORT = 6380
SECRET_NAME = "actorcore-credentials"
CREDENTIALS_KEY = "credentials.json"
CREDENTIALS_PATH = "/etc/actorcore/credentials.json"
ETCD_CLIENT_SECRET = "actorcore-etcd-client"  # an existing etcd's client certificate (ca.crt, tls.crt, tls.key)
ETCD_CLIENT_DIR = "/etc/actorcore-etcd"


@dataclass(frozen=True)
class NodeSize:
    """A node's --num-cpus, --memory and --object-store-memory (bytes)."""

    num_cpus: int = 1
    memory: int = 1024 * MIB
    object_store_memory: int = 512 * MIB

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"NodeSize.{name} must be a positive integer, got {value!r}")

    @property
    def shm_mib(self) -> int:
        """The /dev/shm volume's size, MiB."""
        return math.ceil((self.object_store_memory + SHM_HEADROOM) / MIB)

    @property
    def container_memory_mib(self) -> int:
        """The container's memory request and limit, MiB (a memory-backed volume counts in it)."""
        return math.ceil(self.memory / MIB) + self.shm_mib + NODE_OVERHEAD // MIB


def load_templates() -> list[dict]:
    """The documents of head.yaml and workers.yaml, in that order."""
    documents = []
    for name in ("head.yaml", "workers.yaml"):
        documents += [d for d in yaml.safe_load_all((TEMPLATES / name).read_text()) if d]
    return documents


def render(*, workers: int = 2, image: str | None = None, head: NodeSize = NodeSize(),
           worker: NodeSize = NodeSize(), external_etcd: str | None = None,
           credentials_json: str | None = None) -> list[dict]:
    """The cluster's documents: the head's Service and Deployment, the workers' Deployment with
    `workers` replicas, and, given `credentials_json` (an `actorcore credentials new` file), the
    Secret first. `external_etcd` ("HOST:PORT[,...]"): the head uses that etcd (see head.yaml)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    documents = copy.deepcopy(load_templates())
    service, head_deployment, worker_deployment = documents
    worker_deployment["spec"]["replicas"] = workers
    for deployment, size in ((head_deployment, head), (worker_deployment, worker)):
        pod = deployment["spec"]["template"]["spec"]
        _size_node(pod, size)
        if image is not None:
            for container in pod["initContainers"] + pod["containers"]:
                container["image"] = image
    if external_etcd is not None:
        _use_external_etcd(service, head_deployment, worker_deployment, external_etcd)
    if credentials_json is not None:
        documents.insert(0, secret(credentials_json))
    return documents


def secret(credentials_json: str) -> dict:
    """The Secret that holds the cluster's credentials file."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SECRET_NAME, "labels": {"app.kubernetes.io/name": "actorcore"}},
            "data": {CREDENTIALS_KEY: base64.b64encode(credentials_json.encode()).decode()}}


def _node_container(pod: dict) -> dict:
    (container,) = [c for c in pod["containers"] if c["name"] == "actorcore"]
    return container


def _set_flag(args: list[str], flag: str, value: str) -> None:
    """Set `flag`'s value in `args` (added at the end if absent)."""
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]


def _remove_flag(args: list[str], flag: str) -> None:
    index = args.index(flag)
    del args[index:index + 2]


def _size_node(pod: dict, size: NodeSize) -> None:
    container = _node_container(pod)
    for flag, value in (("--num-cpus", size.num_cpus), ("--memory", size.memory),
                        ("--object-store-memory", size.object_store_memory)):
        _set_flag(container["args"], flag, str(value))
    amounts = {"cpu": str(size.num_cpus), "memory": f"{size.container_memory_mib}Mi"}
    container["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
    shm["emptyDir"]["sizeLimit"] = f"{size.shm_mib}Mi"


def _use_external_etcd(service: dict, head: dict, workers: dict, endpoints: str) -> None:
    service["spec"]["ports"] = [p for p in service["spec"]["ports"] if p["name"] != "etcd"]
    etcd_flags = ["--etcd-ca", f"{ETCD_CLIENT_DIR}/ca.crt", "--etcd-cert", f"{ETCD_CLIENT_DIR}/tls.crt",
                  "--etcd-key", f"{ETCD_CLIENT_DIR}/tls.key"]
    for deployment in (head, workers):
        pod = deployment["spec"]["template"]["spec"]
        container = _node_container(pod)
        args = container["args"]
        if "--head" in args:
            _remove_flag(args, "--port")
            args += ["--etcd", endpoints]
            container["ports"] = [p for p in container["ports"] if p["name"] != "etcd"]
        else:
            _set_flag(args, "--address", endpoints)
            (wait,) = [c for c in pod["initContainers"] if c["name"] == "wait-for-head"]
            host, _, port = endpoints.split(",")[0].rpartition(":")
            wait["command"][-2:] = [host.strip("[]"), port]
        args += etcd_flags
        container["volumeMounts"].append({"name": "etcd-client", "mountPath": ETCD_CLIENT_DIR, "readOnly": True})
        pod["volumes"].append({"name": "etcd-client", "secret": {"secretName": ETCD_CLIENT_SECRET}})


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Print the rendered documents as one YAML stream."""
    parser = argparse.ArgumentParser(description="Render actorcore's Kubernetes manifests.")
    parser.add_argument("--workers", type=int, default=2, help="worker pods (default 2)")
    parser.add_argument("--image", help="the actorcore image (default: the templates', actorcore:latest)")
    defaults = NodeSize()
    for role in ("head", "worker"):
        parser.add_argument(f"--{role}-cpus", type=_positive, default=defaults.num_cpus,
                            help=f"--num-cpus of the {role} (default {defaults.num_cpus})")
        parser.add_argument(f"--{role}-memory", type=_positive, default=defaults.memory,
                            help=f"--memory of the {role}, bytes (default {defaults.memory})")
        parser.add_argument(f"--{role}-object-store-memory", type=_positive, default=defaults.object_store_memory,
                            help=f"--object-store-memory of the {role}, bytes (default {defaults.object_store_memory})")
    parser.add_argument("--external-etcd", metavar="HOST:PORT[,...]",
                        help=f"use this etcd (its client certificate in the Secret {ETCD_CLIENT_SECRET})")
    parser.add_argument("--credentials", type=Path, metavar="FILE",
                        help=f"include the Secret {SECRET_NAME} made from this credentials file")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error(f"argument --workers: must be >= 0, got {args.workers}")
    documents = render(
        workers=args.workers, image=args.image,
        head=NodeSize(args.head_cpus, args.head_memory, args.head_object_store_memory),
        worker=NodeSize(args.worker_cpus, args.worker_memory, args.worker_object_store_memory),
        external_etcd=args.external_etcd,
        credentials_json=args.credentials.read_text() if args.credentials else None)
    yaml.safe_dump_all(documents, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
