"""`ray.util.scheduling_strategies` under Ray's names: where a task or actor runs.

The records themselves live in `actorcore.scheduling` (the options layer validates them,
and it may not import this package); this module gives them under Ray's module name.
"""

from __future__ import annotations

from ..scheduling import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
