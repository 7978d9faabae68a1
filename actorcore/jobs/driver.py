"""How a submitted job learns which driver its entrypoint connected (docs/architecture.md, "Jobs").

The job's runner puts its own kernel URI in the entrypoint's environment (`JOB_RUNNER_ENV`);
`init()` in a driver started there tells it `DriverConnected` (`announce_driver`), and the
runner records the driver's job id, node and `driver_info` in the job's record (the first
driver only: an entrypoint may start several). Nothing here is imported unless a driver runs
in a job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .._logging import get_logger

__all__ = ["JOB_RUNNER_ENV", "DriverConnected", "announce_driver"]

log = get_logger(__name__)

#: the kernel URI of the `JobRunner` of the job an entrypoint runs for
JOB_RUNNER_ENV = "ACTORCORE_JOB_RUNNER"


@dataclass(frozen=True, slots=True)
class DriverConnected:
    """Driver -> its job's `JobRunner`: the driver's job id, node id and Ray's ``driver_info``
    (``{"id", "node_ip_address", "pid"}``)."""

    job_id: str
    node_id: str
    driver_info: dict


def announce_driver(system: Any, job_id: str, node_id: str, driver_id: str) -> None:
    """Tell the job whose entrypoint started this process (if any) that this driver connected;
    a URI that names no runner is logged and ignored (the driver runs on)."""
    uri = os.environ.get(JOB_RUNNER_ENV)
    if not uri:
        return
    tcp = system.address.tcp or ""
    info = {"id": driver_id, "node_ip_address": tcp.rsplit(":", 1)[0] if tcp else "", "pid": str(os.getpid())}
    try:
        system.ref_from_uri(uri).tell(DriverConnected(job_id, node_id, info))
    except ValueError as error:
        log.warning("the job's runner cannot be told of this driver", uri=uri, error=str(error))
