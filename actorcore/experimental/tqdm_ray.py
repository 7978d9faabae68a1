"""``ray.experimental.tqdm_ray`` under its Ray name: `actorcore.util.tqdm`'s bar (docs/architecture.md,
"Progress bars")."""

from ..util.tqdm import as_completed, get, tqdm

__all__ = ["as_completed", "get", "tqdm"]
