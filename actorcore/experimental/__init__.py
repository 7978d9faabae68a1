"""`actorcore.experimental`: the parts of Ray's ``ray.experimental`` that actorcore has.

- `tqdm_ray`: progress bars in tasks and actors shown on the driver (`actorcore.util.tqdm`).
"""

__all__: list[str] = []
