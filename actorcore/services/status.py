"""``actorcore supervise status``: the daemon and its services as etcd records them.

Read-only: it asks etcd for the leader's record (``supervise/daemon``, with the spec's tree,
the escalations and the last reload), the leader and standby keys, every ``services/<name>``
record the daemon writes and the ``actors/<id>`` records of the nodes. :func:`gather` returns
``{"daemon": {...}, "services": [row, ...]}``; :func:`format_status` draws the tree: one row per
group (its strategy and restart window) and per actor name (state, node, pid, restarts, uptime,
age of the last checkpoint). A service's state is its actor's (ALIVE / RESTARTING / DEAD),
MISSING, or STOPPED once the daemon stopped it on purpose.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..gcs import schema
from .leadership import leader_key, standby_prefix

COLUMNS = ("service", "state", "node", "pid", "restarts", "uptime", "checkpoint_age")


def _json(blob: bytes | None) -> dict:
    try:
        return json.loads(blob) if blob else {}
    except ValueError:
        return {}


async def gather(etcd: Any, cluster: str = schema.DEFAULT_CLUSTER) -> dict:
    """The daemon's record and one row per service actor, read from etcd (see the module docstring)."""
    now = time.time()
    daemon = _json(await etcd.get(schema.key(cluster, "supervise", "daemon")))
    leader = _json(await etcd.get(leader_key(cluster)))
    daemon["leader"] = leader or None
    daemon["standbys"] = [_json(value) for _, value in await etcd.get_prefix(standby_prefix(cluster))]
    rows = []
    for key, value in await etcd.get_prefix(schema.key(cluster, "services", "")):
        if key.endswith("/checkpoint"):
            continue
        record = _json(value)
        if not record:
            continue
        actor: dict = {}
        if record.get("actor_id"):
            actor = _json(await etcd.get(schema.key(cluster, "actors", record["actor_id"])))
        started, saved = record.get("started"), record.get("checkpoint_time")
        state = "STOPPED" if record.get("stopped") else actor.get("state", "MISSING")
        rows.append({
            "service": record.get("name"), "name": record.get("name"), "actor_id": record.get("actor_id"),
            "group": record.get("group") or [], "of": record.get("service"), "state": state,
            "node": actor.get("node_id"), "pid": actor.get("pid"), "restarts": record.get("restarts", 0),
            "uptime": round(now - started, 1) if started and state == "ALIVE" else None,
            "checkpoint_age": round(now - saved, 1) if saved else None,
            "last_failure": record.get("last_failure"),
        })
    return {"daemon": daemon, "services": rows}


def format_status(status: dict) -> str:
    """The text ``actorcore supervise status`` prints for what :func:`gather` returned."""
    daemon, rows = status["daemon"], status["services"]
    lines = [_daemon_line(daemon)]
    lines.extend(f"  escalation: supervisor {escalation['supervisor']!r} gave up after child "
                 f"{escalation['child']!r} ({escalation['exit']}) {_ago(escalation['time'])}"
                 for escalation in daemon.get("escalations") or [])
    reload = daemon.get("reload")
    if reload:
        if reload.get("ok"):
            done = ", ".join(f"{what} {', '.join(reload[what])}" for what in ("added", "removed", "changed")
                             if reload.get(what)) or "nothing changed"
            lines.append(f"  last reload {_ago(reload['time'])}: {done}")
        else:
            lines.append(f"  last reload {_ago(reload['time'])} FAILED: "
                         f"{reload.get('error') or '; '.join(reload.get('errors', []))}")
    if not rows and not daemon.get("tree"):
        lines.append("no services (is `actorcore supervise SPEC.toml` running against this cluster?)")
        return "\n".join(lines)
    by_name = {row["name"]: row for row in rows}
    table: list[tuple[str, ...]] = [COLUMNS]
    if daemon.get("tree"):
        _draw(daemon["tree"], "", "", by_name, table)
    table.extend(_cells(by_name[name], name) for name in sorted(by_name))  # recorded, not in the daemon's tree
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    return "\n".join(lines)


def _daemon_line(daemon: dict) -> str:
    leader, standbys = daemon.get("leader"), daemon.get("standbys") or []
    if not daemon.get("state"):
        text = "daemon: none has run on this cluster"
    else:
        text = f"daemon: {daemon['state']}"
        if daemon.get("reason"):
            text += f" ({daemon['reason']})"
        text += f", pid {daemon.get('pid')} on {daemon.get('host')}, spec {daemon.get('spec')}"
    if leader is None and daemon.get("state") in ("running", "starting"):
        text += "; its leadership lapsed (killed or frozen?)"
    if standbys:
        waiting = ", ".join(f"pid {s.get('pid')} on {s.get('host')}" for s in standbys)
        text += f"; standing by: {waiting}"
    return text


def _draw(group: dict, label: str, prefix: str, by_name: dict, table: list) -> None:
    limit = "unlimited" if group["max_restarts"] < 0 else f"max {group['max_restarts']} in {group['period']:g}s"
    table.append((label + group["group"], f"[{group['strategy']}, {limit}]", "", "", "", "", ""))
    entries: list[tuple[str, Any]] = []
    for child in group["children"]:
        if "group" in child:
            entries.append(("group", child))
        else:
            entries.extend(("name", name) for name in child["names"])
    for index, (kind, child) in enumerate(entries):
        last = index == len(entries) - 1
        branch, below = prefix + ("└─ " if last else "├─ "), prefix + ("   " if last else "│  ")
        if kind == "group":
            _draw(child, branch, below, by_name, table)
            continue
        row = by_name.pop(child, None)
        table.append(_cells(row, branch + child) if row else (branch + child, "NOT STARTED", "", "", "", "", ""))


def _cells(row: dict, label: str) -> tuple[str, ...]:
    def show(value: Any, column: str) -> str:
        if value is None:
            return "-"
        if column in ("uptime", "checkpoint_age"):
            return f"{value:.1f}s"
        return str(value)[:12] if column == "node" else str(value)

    return (label, *(show(row[c], c) for c in COLUMNS[1:]))


def _ago(when: float) -> str:
    return f"{max(0.0, time.time() - when):.1f}s ago"
