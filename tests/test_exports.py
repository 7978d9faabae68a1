"""The public surface of actorcore's packages, pinned: a change here is a change of API."""

from __future__ import annotations

import actorcore
import actorcore.gcs
import actorcore.kernel


def test_kernel_exports():
    assert sorted(actorcore.kernel.__all__) == sorted([
        "Actor", "ActorContext", "ActorRef", "ActorStoppedError", "ActorSystem",
        "ActorSystemError", "AskTimeoutError", "FAILED", "KernelError", "NORMAL", "PEER_LOST",
        "PeerLostError", "RESTARTS_EXHAUSTED", "Reply", "SerializationError", "Terminated", "run",
    ])
    for name in actorcore.kernel.__all__:
        assert hasattr(actorcore.kernel, name), name


def test_gcs_exports():
    assert sorted(actorcore.gcs.__all__) == sorted([
        "EtcdAuthError", "EtcdClient", "EtcdNotFoundError", "EtcdServer", "EtcdStartError",
        "EtcdUnavailableError", "Lease", "SealedEtcd", "TamperedRecordError", "Watch", "WatchCompactedError",
        "WatchEvent", "find_etcd_binary",
    ])
    for name in actorcore.gcs.__all__:
        assert hasattr(actorcore.gcs, name), name


def test_top_level_is_rays_api():
    assert sorted(actorcore.__all__) == sorted([
        "ActorClass", "ActorHandle", "DynamicObjectRefGenerator", "ObjectRef", "ObjectRefGenerator",
        "RemoteFunction", "__version__",
        "available_resources", "cancel", "cluster_resources", "exceptions", "get", "get_actor",
        "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method", "nodes", "put",
        "remote", "shutdown", "timeline", "wait",
        # beyond Ray: supervision for users
        "ChildSpec", "SupervisionGroup", "supervise", "supervise_gang", "watch",
    ])
    for name in actorcore.__all__:
        assert hasattr(actorcore, name), name
    from actorcore.actor import ActorHandle  # importable under Ray's module path

    assert ActorHandle is actorcore.ActorHandle


def test_supervision_exports():
    import actorcore.supervision

    assert sorted(actorcore.supervision.__all__) == sorted([
        "GROUP_STRATEGIES", "ChildSpec", "SupervisionGroup", "supervise", "supervise_gang", "watch",
    ])
    assert actorcore.supervise is actorcore.supervision.supervise
    assert actorcore.ChildSpec is actorcore.supervision.ChildSpec
