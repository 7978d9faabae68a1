"""The node's writer of user supervision groups' records (docs/supervision.md, "Supervision
groups: supervise()"; the records are described in actorcore/supervision_records.py).

Owned by the node's GcsLink, on its loop: a group's owner tells the GcsLink
`PublishSupervisionGroup`; `GroupRecords.publish` keeps the latest record wanted for each
group and writes it (one write at a time per group, so the last one wins whatever the timing),
under the node's etcd lease. The GcsLink watches each owner's core actor: when it terminates,
`owner_gone` deletes that owner's records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .._logging import get_logger
from ..protocol import PublishSupervisionGroup

__all__ = ["GroupRecords"]

log = get_logger(__name__)


class GroupRecords:
    """The groups published through one node (see the module docstring). `link` is the
    GcsLink: its ``etcd``, ``lease``, ``_key``, ``_spawn`` and ``_start_registration``."""

    def __init__(self, link: Any) -> None:
        self._link = link
        self._wanted: dict[str, dict | None] = {}  # group id -> the record to write next (None: delete)
        self._writing: set[str] = set()
        self._owners: dict[Any, set[str]] = {}  # an owner's core actor -> its groups

    def publish(self, message: PublishSupervisionGroup, watch: Callable[[Any], None]) -> None:
        """Write (or delete) the group's record; watch its owner the first time."""
        groups = self._owners.get(message.owner)
        if groups is None:
            groups = self._owners[message.owner] = set()
            watch(message.owner)
        if message.record is None:
            groups.discard(message.group_id)
        else:
            groups.add(message.group_id)
        self._want(message.group_id, message.record)

    def owner_gone(self, owner: Any) -> None:
        """`owner`'s process ended: delete its groups' records."""
        for group_id in self._owners.pop(owner, ()):
            self._want(group_id, None)

    def _want(self, group_id: str, record: dict | None) -> None:
        self._wanted[group_id] = record
        if group_id not in self._writing:
            self._writing.add(group_id)
            self._link._spawn(self._write(group_id))

    async def _write(self, group_id: str) -> None:
        link = self._link
        try:
            await link._start_registration()
            while group_id in self._wanted:
                record = self._wanted.pop(group_id)
                key = link._key("supervision", group_id)
                if record is None:
                    await link.etcd.delete(key)
                else:
                    await link.etcd.put(key, json.dumps(record).encode(), lease=link.lease)
        except Exception as error:  # noqa: BLE001 - etcd unreachable: the next event writes again
            log.warning("could not write a supervision group's record", group=group_id, error=str(error))
        finally:
            self._writing.discard(group_id)
