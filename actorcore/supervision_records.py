"""User supervision groups as etcd records (docs/supervision.md, "Supervision groups:
supervise()"; the key schema is in actorcore/gcs/schema.py).

Each group made by `actorcore.supervise` is published under ``supervision/<group_id>`` by its
owner's node (`actorcore.node.group_records`), written at its start and at each supervision
event (a member's failure, a restart, giving up), never per call. A record lives as long as
the group's owner process: the node deletes it when the group stops, when the owner process
ends (its core actor terminates) and, being written under the node's etcd lease, when the node
dies. A group that gave up keeps its record (state ``DEAD``, its cause) until then.

A record (`group_record` builds the member rows; the group adds the rest) has ``group_id``,
``name``, ``state`` (``RUNNING`` or ``DEAD``), ``cause``, ``strategy``, ``max_restarts``,
``period`` (seconds; None: no time limit), ``owner`` (``job_id``, ``node_id``, ``pid``,
``driver``), ``started``, ``updated``, ``restarts`` (the members' total), ``last_failure``
(``child``, ``exit``, ``time``) and ``members``: one per child in start order with ``id``,
``actor_id``, ``class_name``, ``restart`` (its restart type), ``state`` (``ALIVE``,
``RESTARTING`` or ``DEAD``), ``restarts`` and ``last_failure`` (``exit``, ``time``).

`gather_groups` reads them for the dashboard, adding each member's node and pid from its
actor record.
"""

from __future__ import annotations

import json
from typing import Any

from .gcs import schema

__all__ = ["GROUP_STATES", "gather_groups", "group_key"]

GROUP_STATES = ("RUNNING", "DEAD")


def group_key(cluster: str, group_id: str) -> str:
    """The etcd key of group `group_id`'s record."""
    return schema.key(cluster, "supervision", group_id)


def _json(blob: bytes | None) -> dict:
    try:
        value = json.loads(blob) if blob else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def gather_groups(etcd: Any, cluster: str = schema.DEFAULT_CLUSTER) -> list[dict]:
    """Every published group (by name, then id), each member with the ``node_id`` and ``pid``
    of its actor's record."""
    groups = []
    for _key, value in await etcd.get_prefix(group_key(cluster, "")):
        record = _json(value)
        if not record.get("group_id"):
            continue
        for member in record.get("members") or []:
            actor = _json(await etcd.get(schema.key(cluster, "actors", member.get("actor_id") or "-")))
            member["node_id"], member["pid"] = actor.get("node_id"), actor.get("pid")
        groups.append(record)
    groups.sort(key=lambda group: (str(group.get("name")), str(group.get("group_id"))))
    return groups
