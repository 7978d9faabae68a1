"""User metrics, as Ray's ``ray.util.metrics``: `Counter`, `Gauge` and `Histogram` with tags
(docs/architecture.md, "Metrics").

Usable from the driver, tasks and actors, from any thread. A record is a dict update under a
lock in this process; a reporter thread sends the process's whole snapshot to its node's
`MetricsExporter` every `REPORT_INTERVAL` seconds and once more at exit (nothing is sent per
call). The node keeps each process's latest snapshot and exports their sum on ``/metrics`` as
``actorcore_<name>``. Without a node that exports metrics (no ``--metrics-export-port``)
records stay in the process and are never sent.

Differences from Ray, on purpose: a name Prometheus would reject raises ValueError (Ray warns
and silently drops the metric's data).
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from .. import runtime
from ..protocol import MetricsSnapshot

__all__ = ["REPORT_INTERVAL", "Counter", "Gauge", "Histogram", "Metric", "flush"]

REPORT_INTERVAL = 2.0  # seconds between two snapshots sent to the node
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class _Registry:
    """This process's recorded samples: (kind, name) -> {"description", "tag_keys",
    "boundaries", "series": {tag values: value}} (a histogram's value: [bucket counts..., sum])."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.metrics: dict[tuple[str, str], dict[str, Any]] = {}
        self.process_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.reporter: threading.Thread | None = None
        self.stopped = threading.Event()

    def declare(self, kind: str, name: str, description: str, tag_keys: tuple, boundaries: tuple) -> dict:
        with self.lock:
            entry = self.metrics.get((kind, name))
            if entry is None or entry["tag_keys"] != tag_keys or entry["boundaries"] != boundaries:
                entry = {"description": description, "tag_keys": tag_keys, "boundaries": boundaries, "series": {}}
                self.metrics[(kind, name)] = entry
        if self.reporter is None:
            self._start_reporter()
        return entry

    def snapshot(self) -> dict:
        with self.lock:
            return {key: {**entry, "series": {tags: list(value) if isinstance(value, list) else value
                                              for tags, value in entry["series"].items()}}
                    for key, entry in self.metrics.items() if entry["series"]}

    def _start_reporter(self) -> None:
        with self.lock:
            if self.reporter is not None:
                return
            self.reporter = threading.Thread(target=self._report_forever, name="actorcore-metrics", daemon=True)
            self.reporter.start()
        atexit.register(self.report)  # runs before api.shutdown (registered earlier, runs later)
        runtime.at_process_end(self.report)  # a worker ends with os._exit: atexit does not run there

    def _report_forever(self) -> None:
        while not self.stopped.wait(REPORT_INTERVAL):
            self.report()

    def report(self) -> None:
        """Send this process's snapshot to its node's exporter, if it has one."""
        core = runtime.current()
        uri = getattr(getattr(core, "node", None), "metrics", None)
        if core is None or not uri:
            return
        metrics = self.snapshot()
        if not metrics:
            return
        try:
            core.system.ref_from_uri(uri).tell(MetricsSnapshot(self.process_id, metrics))
        except Exception:  # noqa: BLE001 - the node or the process's actor system is going away: a snapshot is lost
            pass


_registry = _Registry()


def flush() -> None:
    """Send this process's metrics to its node now (they are sent every few seconds anyway)."""
    _registry.report()


class Metric:
    """What Counter, Gauge and Histogram share: a name, a description, tag keys, default tags."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None,
                 _boundaries: tuple = ()) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Empty name is not allowed: a metric needs a name")
        if not _NAME.match(name):
            raise ValueError(f"Invalid metric name {name!r}: use letters, digits and _, not starting with a digit")
        tag_keys = tag_keys or ()
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys)}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
            if not _NAME.match(key) or key == "NodeId":
                raise ValueError(f"Invalid tag key {key!r}: use letters, digits and _ (NodeId is the node's)")
        self._name = name
        self._description = description
        self._tag_keys = tag_keys
        self._default_tags: dict[str, str] = {}
        self._entry = _registry.declare(self._kind, name, description, tag_keys, _boundaries)

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        """Tags used by every record that does not set them; returns the metric itself."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = dict(default_tags)
        return self

    @property
    def info(self) -> dict[str, Any]:
        """The metric's name, description, tag keys and default tags."""
        return {"name": self._name, "description": self._description, "tag_keys": self._tag_keys,
                "default_tags": self._default_tags}

    def _series_key(self, tags: dict[str, str] | None) -> tuple:
        if tags:
            for key, value in tags.items():
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value)}.")
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key}.")
            final = {**self._default_tags, **tags}
        else:
            final = self._default_tags
        try:
            return tuple(final[key] for key in self._tag_keys)
        except KeyError:
            missing = [key for key in self._tag_keys if key not in final]
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.") from None


def _check_number(value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"value must be int or float, got {type(value)}.")


class Counter(Metric):
    """A cumulative count; only goes up (exported as a Prometheus counter, ``..._total``)."""

    _kind = "counter"

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        super().__init__(name, description, tag_keys)

    def __reduce__(self):
        return Counter, (self._name, self._description, self._tag_keys)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        """Add `value` (> 0, default 1) to the series of `tags` (merged over the default tags)."""
        _check_number(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        key = self._series_key(tags)
        series = self._entry["series"]
        with _registry.lock:
            series[key] = series.get(key, 0.0) + value


class Gauge(Metric):
    """A value that goes up and down: the last one set is exported."""

    _kind = "gauge"

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        super().__init__(name, description, tag_keys)

    def __reduce__(self):
        return Gauge, (self._name, self._description, self._tag_keys)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Set the series of `tags` to `value`."""
        _check_number(value)
        key = self._series_key(tags)
        with _registry.lock:
            self._entry["series"][key] = float(value)


class Histogram(Metric):
    """Counts observations in buckets whose upper bounds are `boundaries` (positive, increasing)."""

    _kind = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: Sequence[float] | None = None,
                 tag_keys: tuple[str, ...] | None = None) -> None:
        if not boundaries:
            raise ValueError("boundaries argument should be provided when using the Histogram class, "
                             "e.g. Histogram('name', boundaries=[1.0, 2.0])")
        for index, bound in enumerate(boundaries):
            if not isinstance(bound, (int, float)) or isinstance(bound, bool) or bound <= 0:
                raise ValueError(f"Invalid `boundaries` argument at index {index}, {list(boundaries)}: "
                                 "use positive numbers")
        if any(b <= a for a, b in itertools.pairwise(boundaries)):
            raise ValueError(f"Invalid `boundaries` argument {list(boundaries)}: they must increase")
        self.boundaries = list(boundaries)
        super().__init__(name, description, tag_keys, _boundaries=tuple(float(b) for b in boundaries))

    def __reduce__(self):
        return Histogram, (self._name, self._description, self.boundaries, self._tag_keys)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Count `value` in its bucket (and in the sum and count) for the series of `tags`."""
        _check_number(value)
        key = self._series_key(tags)
        bounds = self.boundaries
        bucket = next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))
        with _registry.lock:
            counts = self._entry["series"].get(key)
            if counts is None:
                counts = self._entry["series"][key] = [0.0] * (len(bounds) + 2)  # buckets, +Inf, sum
            counts[bucket] += 1
            counts[-1] += value

    @property
    def info(self) -> dict[str, Any]:
        """As `Metric.info`, with the boundaries."""
        return {**super().info, "boundaries": self.boundaries}
