"""Job submission on the head node (docs/architecture.md, "Jobs").

`records` defines a job's status, details and submit request (shared with the client,
`actorcore.job_submission`); `manager.JobManager` is the head's actor that takes submissions
and keeps the records in etcd; `runner.JobRunner` holds one job's entrypoint resources, has
its runtime env set up and runs its entrypoint in a process group of its own; `driver` is how
a driver the entrypoint starts tells the job its job id. The HTTP routes are in
`actorcore.dashboard.jobs`.
"""
