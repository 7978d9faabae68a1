"""`python -m actorcore.worker CONFIG_JSON` runs a worker process (see `worker.main`)."""

from .main import main

main()
