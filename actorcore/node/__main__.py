"""`python -m actorcore.node CONFIG_JSON` runs a node process (see `node.main`)."""

from .main import main

main()
