"""Worker processes (docs/architecture.md, "Processes"): stateless task executors, or the
host of one actor."""
