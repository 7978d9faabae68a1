"""``actorcore supervise-status``: the services of ``actorcore supervise`` as etcd records them.

One row per actor name: service, state (the actor record's ALIVE / RESTARTING / DEAD, MISSING,
or STOPPED once the daemon stopped it on purpose), node, pid, restarts, uptime and the age of the last checkpoint. Read-only: it asks
etcd (``services/<name>`` written by the daemon, ``actors/<id>`` by the nodes).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..gcs import schema

COLUMNS = ("service", "state", "node", "pid", "restarts", "uptime", "checkpoint_age")


async def gather(etcd: Any, cluster: str = schema.DEFAULT_CLUSTER) -> list[dict]:
    """One dict per service actor (keys: COLUMNS, plus ``name`` and ``actor_id``)."""
    now = time.time()
    rows = []
    for key, value in await etcd.get_prefix(schema.key(cluster, "services", "")):
        if key.endswith("/checkpoint"):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        actor: dict = {}
        if record.get("actor_id"):
            blob = await etcd.get(schema.key(cluster, "actors", record["actor_id"]))
            actor = json.loads(blob) if blob else {}
        started, saved = record.get("started"), record.get("checkpoint_time")
        rows.append({
            "service": record.get("name"), "name": record.get("name"), "actor_id": record.get("actor_id"),
            "state": "STOPPED" if record.get("stopped") else actor.get("state", "MISSING"), "node": actor.get("node_id"), "pid": actor.get("pid"),
            "restarts": record.get("restarts", 0),
            "uptime": round(now - started, 1) if started else None,
            "checkpoint_age": round(now - saved, 1) if saved else None,
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    if not rows:
        return "no services (is `actorcore supervise SPEC.toml` running against this cluster?)"

    def show(value: Any, column: str) -> str:
        if value is None:
            return "-"
        if column in ("uptime", "checkpoint_age"):
            return f"{value:.1f}s"
        return str(value)[:12] if column == "node" else str(value)

    table = [COLUMNS] + [tuple(show(row[c], c) for c in COLUMNS) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in table)
