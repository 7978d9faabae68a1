"""``actorcore timeline``: write the cluster's task timeline as a Chrome trace
(`actorcore.task_timeline`, docs/architecture.md "Task events and the state API").

It joins the cluster as a driver (``init(address=...)``), asks the nodes' task histories
through the state API and writes the JSON file that ui.perfetto.dev and chrome://tracing open.
"""

from __future__ import annotations

import argparse
import json
import time

from . import common

__all__ = ["add_timeline"]


def add_timeline(subparsers) -> None:
    """The ``timeline`` command."""
    command = subparsers.add_parser(
        "timeline", help="write the cluster's task timeline (Chrome trace JSON)",
        description="Write one event per task attempt the nodes remember, on the row of the worker that "
                    "ran it, as a Chrome trace: open it in ui.perfetto.dev or chrome://tracing.")
    command.add_argument("--address", type=common.endpoints, metavar="HOST:PORT",
                         help="the cluster's etcd (default: the cluster started or joined on this machine)")
    command.add_argument("--output", metavar="FILE",
                         help="where to write the trace (default: actorcore-timeline-<time>.json here)")
    command.set_defaults(handler=_timeline, parser=command)


def _timeline(args: argparse.Namespace) -> int:
    import actorcore

    output = args.output or time.strftime("actorcore-timeline-%Y-%m-%d_%H-%M-%S.json")
    try:
        actorcore.init(address=args.address or "auto", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, OSError) as error:
        return common.fail("timeline", f"could not join the cluster: {error}")
    try:
        events = actorcore.timeline()
        with open(output, "w", encoding="utf-8") as file:
            json.dump(events, file)
    except OSError as error:
        return common.fail("timeline", f"cannot write {output}: {error.strerror or error}")
    finally:
        actorcore.shutdown()
    tasks = sum(1 for event in events if event["ph"] == "X")
    print(f"wrote {tasks} task event(s) to {output}; open it in https://ui.perfetto.dev or chrome://tracing")
    return 0
