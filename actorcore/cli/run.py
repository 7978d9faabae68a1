"""``actorcore run SCRIPT [ARGS...]`` (or ``-m MODULE [ARGS...]``): run a program written for
Ray on actorcore, unmodified, as python would run it (`actorcore.run`)."""

from __future__ import annotations

from ..run import add_run_arguments, run_from_args

__all__ = ["add_run"]


def add_run(subparsers) -> None:
    """The ``run`` command."""
    command = subparsers.add_parser(
        "run", help="run a program written for Ray (`import ray` is actorcore)",
        description="Run SCRIPT (or -m MODULE) with ARGS as python would, with `import ray` and the "
                    "ray.* modules actorcore provides resolving to actorcore, in the program and in "
                    "the workers that run its tasks and actors.")
    add_run_arguments(command)
    command.set_defaults(handler=run_from_args, parser=command)
