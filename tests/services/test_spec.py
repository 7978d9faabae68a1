"""actorcore.services.spec: the TOML spec of ``actorcore supervise``, parsed and validated."""

from __future__ import annotations

import collections
import pickle
import textwrap

import pytest

import actorcore
import actorcore.services
from actorcore.services import (
    GroupSpec,
    ServiceSpec,
    SpecError,
    SupervisorSpec,
    load_spec,
    parse_spec,
    resolve_class,
)

pytestmark = pytest.mark.timeout(30)

ISSUE_EXAMPLE = """
[supervisor]            # the root of the tree
strategy = "one_for_one"   # one_for_all | rest_for_one
max_restarts = 5
period = 30

[services.counter]
class = "examples.services.counter:Counter"   # module:Class, importable where workers run
args = []
kwargs = { start = 0 }
replicas = 1
restart = "permanent"   # transient | temporary
resources = { CPU = 1 }
checkpoint_interval = 5.0   # seconds; 0 = only on graceful stop
backoff = { min = 0.1, max = 10.0 }
"""


def test_exports():
    assert sorted(actorcore.services.__all__) == sorted([
        "GroupSpec", "ServiceSpec", "SpecError", "SupervisorSpec", "load_spec", "parse_spec",
        "resolve_class", "ServiceHandle", "service_handle",
    ])
    for name in actorcore.services.__all__:
        assert hasattr(actorcore.services, name), name


def test_the_issue_example_parses(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(ISSUE_EXAMPLE)
    spec = load_spec(path)
    assert spec == SupervisorSpec(
        name="root", strategy="one_for_one", max_restarts=5, period=30.0, source=str(path),
        children=(ServiceSpec(
            name="counter", class_path="examples.services.counter:Counter", args=(),
            kwargs={"start": 0}, replicas=1, restart="permanent", resources={}, num_cpus=1.0,
            checkpoint_interval=5.0, backoff=(0.1, 10.0)),),
    )
    assert isinstance(spec, GroupSpec)
    assert spec.actor_names() == ["counter"]
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_defaults():
    spec = parse_spec('[services.echo]\nclass = "mod:Echo"\n')
    assert (spec.strategy, spec.max_restarts, spec.period) == ("one_for_one", 3, 5.0)
    assert spec.children == (ServiceSpec("echo", "mod:Echo"),)
    echo = spec.children[0]
    assert (echo.args, echo.kwargs, echo.replicas, echo.restart, echo.resources, echo.num_cpus,
            echo.checkpoint_interval, echo.backoff) == ((), {}, 1, "permanent", {}, None, 0.0, None)


def test_nested_groups_keep_the_file_order():
    spec = parse_spec(textwrap.dedent("""
        [services.first]
        class = "m:First"
        args = [1, "two"]
        resources = { CPU = 0.5, disk = 2 }
        backoff = { min = 1 }

        [services.storage]
        strategy = "rest_for_one"
        max_restarts = -1
        period = inf

        [services.storage.services.kv]
        class = "m:KV"
        replicas = 2
        restart = "transient"

        [services.storage.services.cache]
        strategy = "one_for_all"

        [services.storage.services.cache.services.lru]
        class = "m:Outer.Inner"
        restart = "temporary"

        [services.last]
        class = "m:Last"
    """), "tree.toml")
    first, storage, last = spec.children
    assert first == ServiceSpec("first", "m:First", args=(1, "two"), resources={"disk": 2}, num_cpus=0.5,
                                backoff=(1.0, 10.0))
    assert isinstance(storage, GroupSpec) and not isinstance(storage, SupervisorSpec)
    assert (storage.name, storage.strategy, storage.max_restarts, storage.period) == (
        "storage", "rest_for_one", -1, float("inf"))
    kv, cache = storage.children
    assert kv == ServiceSpec("kv", "m:KV", replicas=2, restart="transient")
    assert cache == GroupSpec("cache", "one_for_all", 3, 5.0,
                              (ServiceSpec("lru", "m:Outer.Inner", restart="temporary"),))
    assert last.name == "last"
    assert [service.name for service in spec.services()] == ["first", "kv", "lru", "last"]
    assert spec.actor_names() == ["first", "kv-0", "kv-1", "lru", "last"]


def test_replica_names():
    assert ServiceSpec("counter", "m:C").actor_names() == ["counter"]
    assert ServiceSpec("counter", "m:C", replicas=3).actor_names() == ["counter-0", "counter-1", "counter-2"]


def _service(body: str, name: str = "counter") -> str:
    return f'[services.{name}]\nclass = "m:Counter"\n{body}\n'


# (spec text, kind, name, field, words the message must hold)
BAD_SPECS = [
    (_service('restart = "always"'), "service", "counter", "restart",
     ["must be one of permanent, transient, temporary, got 'always'"]),
    (_service("replicas = 0"), "service", "counter", "replicas", [">= 1", "got 0"]),
    (_service("replicas = 1.5"), "service", "counter", "replicas", ["an int"]),
    (_service("replicas = true"), "service", "counter", "replicas", ["an int"]),
    (_service("replica = 2"), "service", "counter", "replica", ["unknown field", "did you mean 'replicas'"]),
    (_service("args = 3"), "service", "counter", "args", ["array"]),
    (_service('kwargs = [1]'), "service", "counter", "kwargs", ["table"]),
    (_service('kwargs = { "not-ident" = 1 }'), "service", "counter", "kwargs", ["identifier"]),
    (_service("resources = 2"), "service", "counter", "resources", ["table"]),
    (_service("resources = { CPU = -1 }"), "service", "counter", "resources.CPU", [">= 0", "got -1"]),
    (_service('resources = { memory = "lots" }'), "service", "counter", "resources.memory", ["number"]),
    (_service("resources = { GPU = 1 }"), "service", "counter", "resources.GPU", ["not supported"]),
    (_service("checkpoint_interval = -1.0"), "service", "counter", "checkpoint_interval", [">= 0"]),
    (_service("checkpoint_interval = inf"), "service", "counter", "checkpoint_interval", ["finite"]),
    (_service("backoff = 1"), "service", "counter", "backoff", ["table"]),
    (_service("backoff = { min = -1 }"), "service", "counter", "backoff.min", [">= 0"]),
    (_service("backoff = { min = 2, max = 1 }"), "service", "counter", "backoff.max", [">= backoff.min"]),
    (_service("backoff = { low = 2 }"), "service", "counter", "backoff.low", ["valid: min, max"]),
    ('[services.counter]\nreplicas = 2\n', "service", "counter", "class", ["missing", "module:Class"]),
    ('[services.counter]\nclass = "m.Counter"\n', "service", "counter", "class", ["'module:Class'"]),
    ('[services.counter]\nclass = "m:Counter:x"\n', "service", "counter", "class", ["'module:Class'"]),
    ('[services.counter]\nclass = 3\n', "service", "counter", "class", ["'module:Class'"]),
    ('[supervisor]\nstrategy = "one_for_none"\n' + _service(""), "supervisor", None, "strategy",
     ["one_for_one, one_for_all, rest_for_one"]),
    ("[supervisor]\nmax_restarts = -2\n" + _service(""), "supervisor", None, "max_restarts", [">= 0", "-1"]),
    ("[supervisor]\nperiod = 0\n" + _service(""), "supervisor", None, "period", ["> 0"]),
    ("[supervisor]\nintensity = 3\n" + _service(""), "supervisor", None, "intensity",
     ["unknown field", "valid: strategy, max_restarts, period"]),
    ("[services.storage]\nstrategy = 'all'\n" + _service("", "storage.services.kv"), "group", "storage",
     "strategy", ["must be one of"]),
    ("[services.storage]\nreplicas = 2\n" + _service("", "storage.services.kv"), "group", "storage",
     "replicas", ["unknown field", "valid: strategy, max_restarts, period, services"]),
    ("[services.storage]\nclass = 'm:X'\nservices = {}\n", "group", "storage", "class", ["not allowed"]),
    ("[services.storage]\nservices = {}\n", "group", "storage", "services", ["empty"]),
    ("[services.storage]\nservices = 3\n", "group", "storage", "services", ["table"]),
    (_service("") + _service("", "g.services.counter"), "service", "counter", None,
     ["already taken by service 'counter' (at the top level)", "unique"]),
    (_service("replicas = 2") + _service("", '"counter-1"'), "service", "counter-1", None,
     ["already taken by service 'counter'"]),
    (_service("", "root"), "service", "root", None, ["already taken by the top supervisor"]),
    (_service("", "g.services.g"), "service", "g", None, ["already taken by group 'g'"]),
    (_service("", '"my counter"'), "service", "my counter", None, ["letters, digits"]),
    (_service("", '"-x"'), "service", "-x", None, ["must not start with"]),
    ("[servics.counter]\nclass = 'm:C'\n", None, None, "servics",
     ["unknown top-level table", "did you mean 'services'", "valid: supervisor, services"]),
    ("[supervisor]\nstrategy = 'one_for_one'\n", None, None, None, ["no services"]),
    ("services = 1\n", None, None, None, ["'services' must be a table"]),
    ("services = {}\n", None, None, None, ["'services' is empty"]),
    ("supervisor = 1\n" + _service(""), None, None, None, ["'supervisor' must be a table"]),
    ("[services]\ncounter = 1\n", None, None, None, ["services.counter must be a table"]),
]


@pytest.mark.parametrize(("text", "kind", "name", "field", "words"), BAD_SPECS)
def test_invalid_specs_name_file_service_and_field(text, kind, name, field, words):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "bad.toml")
    error = caught.value
    message = str(error)
    assert isinstance(error, ValueError)
    assert message.startswith("bad.toml: "), message
    assert (error.source, error.kind, error.name, error.field) == ("bad.toml", kind, name, field), message
    if kind == "supervisor":
        assert "[supervisor]" in message
    elif kind is not None:
        assert f"{kind} {name!r}" in message, message
    if field is not None:
        assert repr(field) in message, message
    for words_ in words:
        assert words_ in message, message


def test_the_brief_message_shape():
    with pytest.raises(SpecError) as caught:
        parse_spec(_service('restart = "always"'), "spec.toml")
    assert str(caught.value) == ("spec.toml: service 'counter': field 'restart' must be one of permanent, "
                                 "transient, temporary, got 'always'")


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[services.counter]\nclass = "m:C"\nreplicas = = 2\n')
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}: line 3, column ")
    assert "not valid TOML" in str(caught.value)
    assert caught.value.line == 3


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(SpecError, match=r"missing\.toml: cannot read the spec"):
        load_spec(missing)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(SpecError, match=r"binary\.toml: the spec is not UTF-8"):
        load_spec(binary)


def test_spec_error_pickles():
    with pytest.raises(SpecError) as caught:
        parse_spec(_service("replicas = 0"), "bad.toml")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (str(copy), copy.source, copy.kind, copy.name, copy.field) == (
        str(caught.value), "bad.toml", "service", "counter", "replicas")


def test_resolve_class_imports_a_real_class():
    assert resolve_class(ServiceSpec("od", "collections:OrderedDict")) is collections.OrderedDict
    assert resolve_class(ServiceSpec("dd", "collections.abc:Mapping")) is collections.abc.Mapping
    assert resolve_class(ServiceSpec("inner", f"{__name__}:Outer.Inner")) is Outer.Inner
    assert resolve_class(ServiceSpec("remote", f"{__name__}:RemoteCounter")) is RemoteCounter


class Outer:
    class Inner:
        pass


@actorcore.remote
class RemoteCounter:
    pass


@pytest.mark.parametrize(("class_path", "words"), [
    ("no_such_module_for_actorcore:Thing", ["cannot import module 'no_such_module_for_actorcore'", "PYTHONPATH"]),
    ("collections:NoSuchClass", ["has no attribute 'NoSuchClass'"]),
    ("collections:OrderedDict.nope", ["'OrderedDict' has no attribute 'nope'"]),
    ("os:sep", ["is a str, not a class"]),
])
def test_resolve_class_errors_name_the_service(class_path, words):
    with pytest.raises(SpecError) as caught:
        resolve_class(ServiceSpec("svc", class_path), "spec.toml")
    message = str(caught.value)
    assert message.startswith("spec.toml: service 'svc': field 'class' "), message
    assert (caught.value.kind, caught.value.name, caught.value.field) == ("service", "svc", "class")
    for word in words:
        assert word in message, message
