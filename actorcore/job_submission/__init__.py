"""Ray's ``ray.job_submission``: submit jobs to a cluster's head and follow them
(docs/architecture.md, "Jobs").

`JobSubmissionClient` speaks to the head's Jobs API; `JobStatus`, `JobDetails` (`JobInfo`) and
`JobType` are what it answers, with Ray's names and fields.
"""

from ..jobs.records import JobDetails, JobInfo, JobStatus, JobType
from .client import JobSubmissionClient, JobSubmissionError

__all__ = ["JobDetails", "JobInfo", "JobStatus", "JobSubmissionClient", "JobSubmissionError", "JobType"]
