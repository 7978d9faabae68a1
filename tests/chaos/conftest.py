"""The chaos suite's clusters: the multinode suite's CLI-started 3-node cluster (fresh per test)."""

from tests.multinode.conftest import LEASE_TTL, fresh_cluster  # noqa: F401 (a fixture)
