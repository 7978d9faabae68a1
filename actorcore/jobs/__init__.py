"""Job submission on the head node (docs/architecture.md, "Jobs").

`records` defines a job's status, details and submit request (shared with the client,
`actorcore.job_submission`); `manager.JobManager` is the head's actor that takes submissions
and keeps the records in etcd; `runner.JobRunner` runs one job's entrypoint in a process
group of its own. The HTTP routes are in `actorcore.dashboard.jobs`.
"""
