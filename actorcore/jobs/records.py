"""A submitted job's record: its status, its details with Ray's field names, and the submit
request they start from (docs/architecture.md, "Jobs").

The record of a job is the JSON object stored (sealed) at ``jobs/<submission_id>`` in etcd
(`actorcore.gcs.schema`): the `JobDetails` fields, plus ``log_path`` (the job's log file on the
head) and ``pid`` (its entrypoint's process, the leader of the job's process group), which the
API does not show. Both the head (`jobs.manager`, `jobs.runner`) and the client
(`actorcore.job_submission`) read these definitions; nothing here imports aiohttp.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..runtime_env.packaging import URI_SCHEME
from ..runtime_env.spec import validate as validate_runtime_env

__all__ = [
    "TERMINAL",
    "JobDetails",
    "JobInfo",
    "JobStatus",
    "JobType",
    "SubmitRequest",
    "new_submission_id",
]

#: a submission id: what may name a key segment and a file
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class JobStatus(str, enum.Enum):
    """Where a job is, as Ray's ``JobStatus``: a str, so ``status == "RUNNING"`` holds."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        """Whether the job has ended (it will not change status again)."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED})


class JobType(str, enum.Enum):
    """How a job came to be; every job actorcore knows was submitted (Ray also lists drivers)."""

    SUBMISSION = "SUBMISSION"

    def __str__(self) -> str:
        return self.value


@dataclass
class JobDetails:
    """A submitted job as ``GET /api/jobs/{id}`` answers it (Ray's ``JobDetails``). Times are
    milliseconds since the epoch; ``job_id``, ``driver_node_id`` and ``driver_info`` are set
    once a driver the entrypoint started connected (`jobs.driver`; None before, or if it
    starts none); ``driver_exit_code`` is set once the entrypoint ended."""

    submission_id: str
    entrypoint: str
    status: JobStatus = JobStatus.PENDING
    type: JobType = JobType.SUBMISSION
    job_id: str | None = None
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    driver_exit_code: int | None = None
    driver_node_id: str | None = None
    driver_agent_http_address: str | None = None
    driver_info: dict | None = None

    @classmethod
    def from_dict(cls, data: dict) -> JobDetails:
        """The details in `data` (a record or an API answer; other keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        values["status"] = JobStatus(values.get("status", "PENDING"))
        values["type"] = JobType(values.get("type") or "SUBMISSION")
        return cls(**values)

    def to_dict(self) -> dict:
        """These details as JSON-able data (enums as their strings)."""
        data = asdict(self)
        data["status"] = self.status.value
        data["type"] = self.type.value
        return data


#: Ray's older name for the same record
JobInfo = JobDetails


def new_submission_id() -> str:
    """A fresh submission id (Ray's are ``raysubmit_<random>``)."""
    return f"actorcoresubmit_{secrets.token_hex(8)}"


def _number(body: dict, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class SubmitRequest:
    """What ``POST /api/jobs/`` carries (Ray's ``JobSubmitRequest``), checked."""

    entrypoint: str
    submission_id: str | None = None
    runtime_env: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict | None = None

    @classmethod
    def from_json(cls, body: Any) -> SubmitRequest:
        """The request in the decoded JSON `body`; ValueError names what is wrong with it."""
        if not isinstance(body, dict):
            raise ValueError(f"a job submission is a JSON object, got {type(body).__name__}")
        unknown = set(body) - {f.name for f in fields(cls)} - {"job_id"}
        if unknown:
            raise ValueError(f"unknown field(s) in the job submission: {', '.join(sorted(unknown))}")
        entrypoint = body.get("entrypoint")
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise ValueError(f"entrypoint must be a non-empty shell command, got {entrypoint!r}")
        submission_id = body.get("submission_id") or body.get("job_id")  # job_id: Ray's deprecated name
        if submission_id is not None and (not isinstance(submission_id, str) or not _ID.fullmatch(submission_id)):
            raise ValueError("submission_id must be 1-128 letters, digits, '_', '.' or '-' (not first), "
                             f"got {submission_id!r}")
        runtime_env = body.get("runtime_env") or {}
        if not isinstance(runtime_env, dict):
            raise ValueError(f"runtime_env must be a JSON object, got {runtime_env!r}")
        runtime_env = validate_runtime_env(runtime_env, "runtime_env")
        runtime_env.pop("excludes", None)  # it shaped the packing, on the client
        for module in runtime_env.get("py_modules", ()):
            if not module.startswith(URI_SCHEME):
                raise ValueError(f"runtime_env py_modules entries must be package URIs ({URI_SCHEME}<sha256>.zip, "
                                 f"what the client uploads a local path as), got {module!r}")
        working_dir = runtime_env.get("working_dir")
        if working_dir is not None and not working_dir.startswith(URI_SCHEME):
            raise ValueError(f"runtime_env working_dir must be a package URI ({URI_SCHEME}<sha256>.zip, what the "
                             f"client uploads a local directory as), got {working_dir!r}")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in metadata.items()):
            raise ValueError(f"metadata must map strings to strings, got {metadata!r}")
        resources = body.get("entrypoint_resources")
        if resources is not None:
            if not isinstance(resources, dict):
                raise ValueError(f"entrypoint_resources must be a JSON object, got {resources!r}")
            for name in resources:
                if name in ("CPU", "GPU", "memory"):
                    raise ValueError(f"give {name} as entrypoint_num_cpus/entrypoint_num_gpus/entrypoint_memory, "
                                     "not in entrypoint_resources")
                _number(resources, name)
        memory = _number(body, "entrypoint_memory")
        return cls(entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env, metadata=metadata,
                   entrypoint_num_cpus=_number(body, "entrypoint_num_cpus"),
                   entrypoint_num_gpus=_number(body, "entrypoint_num_gpus"),
                   entrypoint_memory=None if memory is None else int(memory), entrypoint_resources=resources)
