"""Example services for ``actorcore supervise`` (see examples/services/counter.py)."""
