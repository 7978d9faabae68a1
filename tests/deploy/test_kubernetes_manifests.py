"""The Kubernetes manifests (deploy/kubernetes/), offline: rendered for a head and 3 workers, each
document valid against Kubernetes' schemas (`kubernetes-validate`, unknown fields refused), and
wired as the cluster needs: the workers join the head's Service at its etcd port, the Service's
ports are the head's, the credentials' Secret reaches the file `--credentials` names, /dev/shm
is memory sized for the object store, the resources follow the node's flags, the probes and the
graceful stop use real `actorcore` commands, and every node's flags parse with actorcore's own
command line."""

from __future__ import annotations

import argparse
import posixpath
import re

import kubernetes_validate
import pytest

from actorcore.cli import build_parser
from actorcore.cli.stop import STOP_TIMEOUT
from actorcore.credentials import make_credentials

pytestmark = pytest.mark.timeout(60)

WORKERS = 3
OLDEST_VERSION = "1.30"  # the oldest Kubernetes release the manifests are checked against
_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


@pytest.fixture(scope="module")
def credentials_json():
    return make_credentials("default", "actorcore-head:6380", "0" * 32, hosts=["actorcore-head"]).to_json()


@pytest.fixture(scope="module")
def documents(render, credentials_json):
    return render.render(workers=WORKERS, credentials_json=credentials_json)


@pytest.fixture(scope="module")
def parts(documents):
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    assert len(by_kind) == len(documents) == 4
    return {"secret": by_kind["Secret", "actorcore-credentials"],
            "service": by_kind["Service", "actorcore-head"],
            "head": by_kind["Deployment", "actorcore-head"],
            "workers": by_kind["Deployment", "actorcore-worker"]}


def _pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def _node(deployment: dict) -> dict:
    (container,) = _pod(deployment)["containers"]
    return container


def _flags(container: dict) -> dict[str, str | bool]:
    """``--flag value`` pairs (a flag followed by another flag, or last, is True)."""
    args, flags = container["args"], {}
    for index, arg in enumerate(args):
        if arg.startswith("--"):
            following = args[index + 1] if index + 1 < len(args) else None
            flags[arg] = True if following is None or following.startswith("--") else following
    return flags


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", str(quantity)).groups()
    return int(number) * _UNITS[unit]


def _volume(deployment: dict, name: str) -> dict:
    (volume,) = [v for v in _pod(deployment)["volumes"] if v["name"] == name]
    return volume


def _mount_at(container: dict, path: str) -> dict:
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    return mount


@pytest.mark.parametrize("version", [OLDEST_VERSION, kubernetes_validate.latest_version()])
def test_every_document_is_valid(documents, version):
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_refuses_a_misspelled_field(parts):
    broken = {**parts["service"], "spec": {**parts["service"]["spec"], "publishNotReadyAdress": True}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_templates_are_what_the_renderer_makes_by_default(render):
    """head.yaml and workers.yaml can be applied as they are: their sizes are in step."""
    assert render.render() == render.load_templates()


def test_the_workers_join_the_heads_service_at_its_etcd_port(parts, render):
    service, workers = parts["service"], parts["workers"]
    assert workers["spec"]["replicas"] == WORKERS
    (etcd_port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "etcd"]
    address = f"{service['metadata']['name']}:{etcd_port}"
    assert address == f"{render.HEAD_SERVICE}:{render.ETCD_PORT}"
    assert _flags(_node(workers))["--address"] == address
    (wait,) = [c for c in _pod(workers)["initContainers"] if c["name"] == "wait-for-head"]
    assert wait["command"][-2:] == [service["metadata"]["name"], str(etcd_port)]
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_the_services_ports_are_the_heads(parts):
    service, head = parts["service"], parts["head"]
    container, flags = _node(head), _flags(_node(head))
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports
        assert port["port"] == container_ports[port["targetPort"]]
    assert container_ports == {"etcd": int(flags["--port"]), "dashboard": int(flags["--dashboard-port"]),
                               "metrics": int(flags["--metrics-export-port"])}
    assert flags["--dashboard-host"] == "0.0.0.0"
    head_labels = head["spec"]["template"]["metadata"]["labels"]
    worker_labels = parts["workers"]["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= head_labels.items() and not selector.items() <= worker_labels.items()
    assert head["spec"]["selector"]["matchLabels"] == selector and head["spec"]["replicas"] == 1


@pytest.mark.parametrize("role", ["head", "workers"])
def test_the_credentials_secret_reaches_the_file_credentials_names(parts, role, credentials_json):
    secret, deployment = parts["secret"], parts[role]
    (key,) = secret["data"]
    node = _node(deployment)
    path = _flags(node)["--credentials"]
    secret_volume = _volume(deployment, "credentials-secret")["secret"]
    assert secret_volume["secretName"] == secret["metadata"]["name"]
    assert [item["key"] for item in secret_volume["items"]] == [key]
    # the init container copies the Secret's file, mode 0600, to the in-memory volume the node reads
    (copy,) = [c for c in _pod(deployment)["initContainers"] if c["name"] == "credentials"]
    mounts = {m["name"]: m["mountPath"] for m in copy["volumeMounts"]}
    (item,) = secret_volume["items"]
    assert copy["command"] == ["install", "-m", "0600", posixpath.join(mounts["credentials-secret"], item["path"]),
                               posixpath.join(mounts["credentials"], posixpath.basename(path))]
    assert _mount_at(node, posixpath.dirname(path))["name"] == "credentials"
    assert _volume(deployment, "credentials")["emptyDir"]["medium"] == "Memory"
    assert "fsGroup" in _pod(deployment)["securityContext"]  # what lets the non-root copy read the Secret


@pytest.mark.parametrize("role", ["head", "workers"])
def test_dev_shm_is_memory_sized_for_the_object_store(parts, role):
    deployment = parts[role]
    node = _node(deployment)
    volume = _volume(deployment, _mount_at(node, "/dev/shm")["name"])
    assert volume["emptyDir"]["medium"] == "Memory"
    assert _bytes(volume["emptyDir"]["sizeLimit"]) >= int(_flags(node)["--object-store-memory"])


@pytest.mark.parametrize("role", ["head", "workers"])
def test_a_restarted_container_finds_what_its_node_left(parts, role):
    """ACTORCORE_HOME (the node files), /dev/shm and /tmp (the spilled objects) are pod volumes,
    which outlive a container: the next `actorcore start` removes what a killed node left there."""
    deployment = parts[role]
    node = _node(deployment)
    (home,) = [e["value"] for e in node["env"] if e["name"] == "ACTORCORE_HOME"]
    for path in (home, "/dev/shm", "/tmp"):
        (mount,) = [m for m in node["volumeMounts"] if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")]
        assert "emptyDir" in _volume(deployment, mount["name"]) and not mount.get("readOnly")


@pytest.mark.parametrize("role", ["head", "workers"])
def test_the_resources_follow_the_nodes_flags(parts, role):
    deployment = parts[role]
    node, flags = _node(deployment), _flags(_node(deployment))
    requests, limits = node["resources"]["requests"], node["resources"]["limits"]
    assert requests == limits  # the Guaranteed class: the node's resources are the pod's
    assert float(requests["cpu"]) == float(flags["--num-cpus"])
    shm = _bytes(_volume(deployment, "shm")["emptyDir"]["sizeLimit"])
    assert _bytes(requests["memory"]) >= int(flags["--memory"]) + shm  # /dev/shm's pages count in it


@pytest.mark.parametrize("role", ["head", "workers"])
def test_probes_and_the_graceful_stop_use_actorcores_commands(parts, role):
    deployment = parts[role]
    node = _node(deployment)
    assert node["startupProbe"]["exec"]["command"] == ["actorcore", "health", "--live"]
    assert node["livenessProbe"]["exec"]["command"] == ["actorcore", "health", "--live"]
    assert node["readinessProbe"]["exec"]["command"] == ["actorcore", "health"]
    startup = node["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60  # `start`'s READY_TIMEOUT
    assert node["lifecycle"]["preStop"]["exec"]["command"] == ["actorcore", "stop"]
    assert _pod(deployment)["terminationGracePeriodSeconds"] > STOP_TIMEOUT
    parser = build_parser()
    for command in (node["startupProbe"], node["readinessProbe"], node["lifecycle"]["preStop"]):
        parser.parse_args(command["exec"]["command"][1:])


@pytest.mark.parametrize("role", ["head", "workers"])
def test_the_pods_run_as_a_non_root_user(parts, role):
    context = _pod(parts[role])["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    for container in _pod(parts[role])["initContainers"] + _pod(parts[role])["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("role", ["head", "workers"])
def test_the_nodes_flags_parse_with_actorcores_command_line(parts, role, tmp_path, credentials_json):
    node = _node(parts[role])
    (pod_ip,) = [e for e in node["env"] if e["name"] == "POD_IP"]
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    credentials = tmp_path / "credentials.json"
    credentials.write_text(credentials_json)
    flags = _flags(node)
    args = [{"$(POD_IP)": "10.1.2.3", flags["--credentials"]: str(credentials)}.get(a, a) for a in node["args"]]
    parsed = build_parser().parse_args(["start", "--block", *args])  # the image's ENTRYPOINT adds --block
    assert isinstance(parsed, argparse.Namespace) and parsed.node_ip_address == "10.1.2.3"
    assert parsed.head == (role == "head") and parsed.credentials == str(credentials)


def test_the_external_etcd_variant(render, credentials_json):
    endpoints = "etcd-0.etcd:2379,etcd-1.etcd:2379"
    documents = render.render(workers=WORKERS, external_etcd=endpoints, credentials_json=credentials_json)
    for document in documents:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    _, service, head, workers = documents
    assert [p["name"] for p in service["spec"]["ports"]] == ["dashboard", "metrics"]
    head_flags, worker_flags = _flags(_node(head)), _flags(_node(workers))
    assert head_flags["--etcd"] == worker_flags["--address"] == endpoints and "--port" not in head_flags
    for deployment, flags in ((head, head_flags), (workers, worker_flags)):
        mount = _mount_at(_node(deployment), render.ETCD_CLIENT_DIR)
        assert _volume(deployment, mount["name"])["secret"]["secretName"] == render.ETCD_CLIENT_SECRET
        for flag in ("--etcd-ca", "--etcd-cert", "--etcd-key"):
            assert flags[flag].startswith(render.ETCD_CLIENT_DIR + "/")
    (wait,) = [c for c in _pod(workers)["initContainers"] if c["name"] == "wait-for-head"]
    assert wait["command"][-2:] == ["etcd-0.etcd", "2379"]


def test_the_renderers_command_line(render, tmp_path, capsys, credentials_json):
    import yaml

    credentials = tmp_path / "credentials.json"
    credentials.write_text(credentials_json)
    assert render.main(["--workers", "3", "--worker-cpus", "4", "--worker-memory", str(8 * 2**30),
                        "--worker-object-store-memory", str(2 * 2**30), "--image", "registry.example/actorcore:1",
                        "--credentials", str(credentials)]) == 0
    secret, _, head, workers = list(yaml.safe_load_all(capsys.readouterr().out))
    assert secret["kind"] == "Secret" and workers["spec"]["replicas"] == 3
    flags = _flags(_node(workers))
    assert (flags["--num-cpus"], flags["--memory"], flags["--object-store-memory"]) == (
        "4", str(8 * 2**30), str(2 * 2**30))
    assert _node(workers)["resources"]["limits"] == {"cpu": "4", "memory": f"{8 * 1024 + 2048 + 64 + 512}Mi"}
    assert _volume(workers, "shm")["emptyDir"]["sizeLimit"] == f"{2048 + 64}Mi"
    assert {c["image"] for d in (head, workers) for c in _pod(d)["containers"] + _pod(d)["initContainers"]} == {
        "registry.example/actorcore:1"}
    with pytest.raises(SystemExit):
        render.main(["--worker-cpus", "0"])
