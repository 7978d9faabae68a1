"""The environment variables actorcore reads, and the defaults of the settings they override.

Every module that reads one of these variables takes its name from here, so that a reader
finds them all in one place. Secrets (the cluster token, etcd credentials) travel between
actorcore's own processes neither in the environment (inherited by every process a task
starts) nor on a command line (which other users of the machine can read), but over an
inherited pipe (`actorcore.process_secrets`).

| variable | meaning | read by |
|---|---|---|
| ``ACTORCORE_HOME`` | the folder of this machine's cluster files (default ``~/.actorcore``) | `cluster_files` |
| ``ACTORCORE_TOKEN`` | the cluster token (for a driver or ``start``; never passed on to nodes or workers) | `cluster_files` |
| ``ACTORCORE_ADDRESS`` | the cluster ``init()`` joins when given no address | `api.init` |
| ``ACTORCORE_ETCD_PASSWORD`` | the etcd password, instead of ``--etcd-password-file`` | the CLI |
| ``ACTORCORE_SECRETS_FD`` | the pipe a node or worker process reads its secrets from | `process_secrets` |
| ``ACTORCORE_LOG_LEVEL`` | the log level of the processes actorcore starts (e.g. ``debug``) | `_logging` |
| ``ACTORCORE_ETCD_BIN`` | the etcd binary to run | `gcs.etcd_server` |
| ``ACTORCORE_SUPERVISE_READY_FD`` | where a detached ``supervise`` daemon says it is up | the CLI, `services.leadership` |
| ``ACTORCORE_HOST_ID`` | the host identity of a cluster node's processes | the node, `kernel.address` |
| ``ACTORCORE_MAX_FRAME_BYTES`` | the largest frame an actor system reads from an authenticated peer | `kernel.remote.connections` |
| ``ACTORCORE_TASK_EVENTS`` | ``0`` turns off the task events of the processes that inherit it (the state API then knows no tasks) | `core.core_worker` |
| ``ACTORCORE_ROTATION_MAX_BYTES`` | the size a worker log file is rotated at (Ray's ``RAY_ROTATION_MAX_BYTES``) | `node.log_files` |
| ``ACTORCORE_ROTATION_BACKUP_COUNT`` | the rotated backups a worker log file keeps (``RAY_ROTATION_BACKUP_COUNT``) | `node.log_files` |
| ``ACTORCORE_MAX_DEAD_WORKER_LOGS`` | how many ended workers of a node keep their log files | `node.log_files` |
| ``ACTORCORE_RUNTIME_ENV`` | the runtime env a process runs in (JSON): a job's driver gets its job's, a worker the one its pool started it for; what they submit inherits it | `core.runtime_envs`, `node.runtime_env_setup` |
| ``ACTORCORE_RUNTIME_ENV_PATHS`` | the directories a worker puts first on ``sys.path`` (its runtime env's ``working_dir`` and ``py_modules``; read once, then removed) | `worker.main` |
| ``ACTORCORE_PACKAGE_GRACE_S`` | seconds a runtime env package is kept after its upload and its last use (default 600) | `node.package_collector` (the head) |
| ``ACTORCORE_PACKAGE_GC_INTERVAL_S`` | seconds between passes of the head's package collector and of each node's pruning of its extracted packages (default 60) | `node.package_collector`, `node.worker_pool` |
| ``ACTORCORE_WORKER_ID`` | a worker process's id, given by its node's WorkerPool (read once, then removed) | `worker.main` |
"""

from __future__ import annotations

__all__ = [
    "ADDRESS_ENV",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_MAX_FRAME_BYTES",
    "ETCD_BIN_ENV",
    "ETCD_PASSWORD_ENV",
    "HOME_ENV",
    "HOST_ID_ENV",
    "LOG_LEVEL_ENV",
    "MAX_DEAD_WORKER_LOGS_ENV",
    "MAX_FRAME_ENV",
    "MIN_LEASE_TTL",
    "PACKAGE_GC_INTERVAL_ENV",
    "PACKAGE_GRACE_ENV",
    "ROTATION_BACKUP_COUNT_ENV",
    "ROTATION_MAX_BYTES_ENV",
    "RUNTIME_ENV_ENV",
    "RUNTIME_ENV_PATHS_ENV",
    "SECRETS_FD_ENV",
    "SUPERVISE_READY_FD_ENV",
    "TASK_EVENTS_ENV",
    "TOKEN_ENV",
    "WORKER_ID_ENV",
]

HOME_ENV = "ACTORCORE_HOME"
TOKEN_ENV = "ACTORCORE_TOKEN"
ADDRESS_ENV = "ACTORCORE_ADDRESS"
ETCD_PASSWORD_ENV = "ACTORCORE_ETCD_PASSWORD"
SECRETS_FD_ENV = "ACTORCORE_SECRETS_FD"
HOST_ID_ENV = "ACTORCORE_HOST_ID"
LOG_LEVEL_ENV = "ACTORCORE_LOG_LEVEL"
ETCD_BIN_ENV = "ACTORCORE_ETCD_BIN"
SUPERVISE_READY_FD_ENV = "ACTORCORE_SUPERVISE_READY_FD"
MAX_FRAME_ENV = "ACTORCORE_MAX_FRAME_BYTES"
TASK_EVENTS_ENV = "ACTORCORE_TASK_EVENTS"
ROTATION_MAX_BYTES_ENV = "ACTORCORE_ROTATION_MAX_BYTES"
ROTATION_BACKUP_COUNT_ENV = "ACTORCORE_ROTATION_BACKUP_COUNT"
MAX_DEAD_WORKER_LOGS_ENV = "ACTORCORE_MAX_DEAD_WORKER_LOGS"
WORKER_ID_ENV = "ACTORCORE_WORKER_ID"
RUNTIME_ENV_ENV = "ACTORCORE_RUNTIME_ENV"
RUNTIME_ENV_PATHS_ENV = "ACTORCORE_RUNTIME_ENV_PATHS"
PACKAGE_GRACE_ENV = "ACTORCORE_PACKAGE_GRACE_S"
PACKAGE_GC_INTERVAL_ENV = "ACTORCORE_PACKAGE_GC_INTERVAL_S"

#: Seconds without a keepalive before etcd drops a node's registration and the node counts as
#: dead (a head's ``--lease-ttl`` sets the cluster's; a local cluster uses this).
DEFAULT_LEASE_TTL = 10.0
#: The smallest lease TTL a head accepts.
MIN_LEASE_TTL = 2.0
#: The largest frame (one batch of messages) an actor system reads from an authenticated peer:
#: batches hold up to 1 MiB of messages, but one message may be larger (a kernel message, or
#: a value passed inline); ``ACTORCORE_MAX_FRAME_BYTES`` overrides it, in every process.
DEFAULT_MAX_FRAME_BYTES = 64 << 20
