"""`actorcore.util.metrics`: Ray's signatures, and the errors for bad names, tag keys, tags,
values and boundaries (checked against Ray 2.60's ray.util.metrics)."""

from __future__ import annotations

import pickle

import pytest

import actorcore
from actorcore.util.metrics import Counter, Gauge, Histogram

pytestmark = pytest.mark.timeout(30)


def test_info_and_default_tags():
    counter = Counter("api_requests", description="requests served", tag_keys=("route", "method"))
    assert counter.set_default_tags({"method": "GET"}) is counter
    assert counter.info == {"name": "api_requests", "description": "requests served",
                            "tag_keys": ("route", "method"), "default_tags": {"method": "GET"}}
    counter.inc(tags={"route": "/a"})
    counter.inc(2.5, tags={"route": "/a", "method": "POST"})
    histogram = Histogram("api_latency", "latency", boundaries=[0.1, 1], tag_keys=("route",))
    assert histogram.info["boundaries"] == [0.1, 1]
    Gauge("api_gauge").set(-3)


def test_metrics_pickle_to_equal_metrics():
    histogram = pickle.loads(pickle.dumps(Histogram("api_pickled", "d", boundaries=[1.0], tag_keys=("k",))))
    assert histogram.info == {"name": "api_pickled", "description": "d", "tag_keys": ("k",), "default_tags": {},
                              "boundaries": [1.0]}


@pytest.mark.parametrize(("name", "message"), [
    ("", "Empty name is not allowed"),
    ("1abc", "Invalid metric name '1abc'"),
    ("with space", "Invalid metric name 'with space'"),
    ("with:colon", "Invalid metric name 'with:colon'"),
])
def test_bad_names(name, message):
    with pytest.raises(ValueError, match=message):
        Counter(name)


def test_bad_tag_keys():
    with pytest.raises(TypeError, match="tag_keys should be a tuple type"):
        Counter("api_bad_keys", tag_keys=["route"])
    with pytest.raises(TypeError, match="Tag keys must be str"):
        Gauge("api_bad_keys", tag_keys=(1,))
    with pytest.raises(ValueError, match="Invalid tag key 'a-b'"):
        Gauge("api_bad_keys", tag_keys=("a-b",))
    with pytest.raises(ValueError, match="Invalid tag key 'NodeId'"):
        Gauge("api_bad_keys", tag_keys=("NodeId",))


def test_bad_tags():
    counter = Counter("api_tags", tag_keys=("route", "method"))
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): route,method\."):
        counter.inc()
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): method\."):
        counter.inc(tags={"route": "/a"})
    with pytest.raises(ValueError, match="Unrecognized tag key other"):
        counter.inc(tags={"route": "/a", "method": "GET", "other": "x"})
    with pytest.raises(ValueError, match="Unrecognized tag key other"):
        counter.set_default_tags({"other": "x"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.inc(tags={"route": 1, "method": "GET"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.set_default_tags({"route": 1})


def test_bad_values():
    counter = Counter("api_values")
    for value in (0, -1, -0.5):
        with pytest.raises(ValueError, match=f"value must be >0, got {value}"):
            counter.inc(value)
    with pytest.raises(TypeError, match="value must be int or float"):
        counter.inc("1")
    with pytest.raises(TypeError, match="value must be int or float"):
        Gauge("api_values_gauge").set(None)
    with pytest.raises(TypeError, match="value must be int or float"):
        Histogram("api_values_histogram", boundaries=[1.0]).observe("2")


@pytest.mark.parametrize(("boundaries", "message"), [
    (None, "boundaries argument should be provided"),
    ([], "boundaries argument should be provided"),
    ([1.0, 0.0], "Invalid `boundaries` argument at index 1"),
    ([-1.0], "Invalid `boundaries` argument at index 0"),
    ([1.0, 5.0, 2.0], "they must increase"),
    ([1.0, 1.0], "they must increase"),
])
def test_bad_boundaries(boundaries, message):
    with pytest.raises(ValueError, match=message):
        Histogram("api_histogram", boundaries=boundaries)


@pytest.mark.parametrize("port", [-1, 65536, "8080", 1.5])
def test_init_checks_the_metrics_port(port):
    with pytest.raises(ValueError, match=r"init\(_metrics_export_port=...\) takes a port number"):
        actorcore.init(_metrics_export_port=port)
