"""The option schema: each option's valid and invalid values, where it applies, merging."""

from __future__ import annotations

import pytest

from actorcore import options
from actorcore.options import KINDS, OPTIONS, Option, options_for, resolve, validate

pytestmark = pytest.mark.timeout(10)

WHERE = "f.options()"


class Boom(Exception):
    pass


# (option, kind it applies to, valid values, (invalid value, expected error) pairs)
CASES = [
    ("num_returns", "task", [0, 1, 5, "streaming", "dynamic"],
     [(-1, ValueError), (1.0, TypeError), (True, TypeError), ("2", TypeError), ("stream", TypeError)]),
    ("_generator_backpressure_num_objects", "task", [1, 10, -1], [(0, ValueError), (1.5, TypeError),
                                                                  (True, TypeError)]),
    ("_generator_backpressure_num_objects", "method", [2], [("2", TypeError)]),
    ("num_cpus", "task", [0, 1, 0.5, 8], [(-1, ValueError), ("1", TypeError),
                                         (True, TypeError), (float("nan"), ValueError)]),
    ("num_gpus", "actor", [0, 0.25, 2], [(-0.5, ValueError), ([1], TypeError)]),
    ("num_gpus", "task", [0.5, 1, 4.0], [(1.5, ValueError), ("1", TypeError)]),
    ("memory", "task", [0, 10**9, 0.5e9], [(-1, ValueError), ("1GB", TypeError)]),
    ("memory", "actor", [2 * 1024**3], [(float("nan"), ValueError)]),
    ("accelerator_type", "task", ["V100", "A100"], [("", ValueError), (100, TypeError)]),
    ("resources", "task", [{}, {"disk": 1}, {"custom": 0.5, "x": 0}],
     [({"CPU": 1}, ValueError), ({"GPU": 1}, ValueError), ({"disk": -1}, ValueError),
      ({"disk": "1"}, TypeError), ({1: 1}, TypeError), ({"": 1}, TypeError),
      ([("disk", 1)], TypeError)]),
    ("max_retries", "task", [-1, 0, 3], [(-2, ValueError), (1.5, TypeError)]),
    ("retry_exceptions", "task", [True, False, [Boom], (ValueError, KeyError), []],
     [("yes", TypeError), ([Boom()], TypeError), ([int], TypeError), (ValueError, TypeError)]),
    ("name", "actor", ["counter"], [("", ValueError), (3, TypeError)]),
    ("name", "task", ["my_task"], [("", ValueError)]),
    ("name", "method", ["incr"], [(b"x", TypeError)]),
    ("namespace", "actor", ["ns"], [("", ValueError), (1, TypeError)]),
    ("lifetime", "actor", ["detached", "non_detached"], [("forever", ValueError),
                                                         (True, TypeError)]),
    ("get_if_exists", "actor", [True, False], [(1, TypeError), ("yes", TypeError)]),
    ("max_restarts", "actor", [-1, 0, 5], [(-2, ValueError), ("5", TypeError)]),
    ("max_task_retries", "actor", [-1, 0, 2], [(-3, ValueError), (2.0, TypeError)]),
    ("max_concurrency", "actor", [1, 1000], [(0, ValueError), (2.5, TypeError)]),
    ("scheduling_strategy", "task", ["DEFAULT", "SPREAD"],
     [("spread", ValueError), ("PACK", ValueError), (object(), TypeError)]),
    ("scheduling_strategy", "actor", ["SPREAD"], [(1, TypeError)]),
    ("placement_group", "task", ["default"], [("PACK", TypeError), (1, TypeError)]),
    ("placement_group_bundle_index", "actor", [-1, 0, 3], [(-2, ValueError), (1.0, TypeError)]),
    ("placement_group_capture_child_tasks", "task", [True, False], [(1, TypeError)]),
    ("concurrency_groups", "actor", [{}, {"io": 2, "compute": 1}],
     [({"io": 0}, ValueError), ({"io": 1.5}, TypeError), ({"": 1}, TypeError), ("io", TypeError)]),
    ("concurrency_group", "method", ["io"], [("", ValueError), (1, TypeError)]),
    ("max_calls", "task", [0, 1, 10], [(-1, ValueError), (1.5, TypeError)]),
    ("max_pending_calls", "actor", [-1, 0, 10], [(-2, ValueError), (1.5, TypeError)]),
    ("enable_task_events", "task", [True, False], [(1, TypeError)]),
    ("enable_task_events", "method", [False], [("no", TypeError)]),
    ("object_store_memory", "actor", [1024], [(-1, ValueError)]),
    ("label_selector", "task", [{}], [({"zone": "a"}, ValueError), (["zone"], TypeError)]),
    ("fallback_strategy", "actor", [[]], [([{"label_selector": {}}], ValueError)]),
    ("_labels", "actor", [{}], [({"team": "x"}, ValueError)]),
    ("runtime_env", "task", [{}, {"env_vars": {"A": "1"}}], [({"conda": "base"}, ValueError), ("env", TypeError)]),
    ("allow_out_of_order_execution", "actor", [True, False], [(1, TypeError)]),
    ("enable_tensor_transport", "actor", [False], [(True, ValueError), (1, TypeError)]),
    ("tensor_transport", "method", ["object_store", "OBJECT_STORE"], [("nccl", ValueError), (1, TypeError)]),
]

VALID = [(name, kind, value) for name, kind, values, _ in CASES for value in values]
INVALID = [(name, kind, value, error) for name, kind, _, bad in CASES for value, error in bad]


def test_every_option_has_cases():
    assert {case[0] for case in CASES} == {option.name for option in OPTIONS}


@pytest.mark.parametrize(("name", "kind", "value"), VALID)
@pytest.mark.filterwarnings("ignore:object_store_memory on an actor is deprecated")
def test_valid_values_pass(name, kind, value):
    result = validate(kind, {name: value}, where=WHERE)
    assert list(result) == [name]
    if isinstance(value, list):
        assert result[name] == tuple(value)
    else:
        assert result[name] == value


@pytest.mark.parametrize(("name", "kind", "value", "error"), INVALID)
def test_invalid_values_raise_naming_option_value_and_what_is_allowed(name, kind, value, error):
    with pytest.raises(error) as info:
        validate(kind, {name: value}, where=WHERE)
    message = str(info.value)
    option = next(option for option in OPTIONS if option.name == name and kind in option.applies_to)
    assert message.startswith(f"{WHERE}: ")
    assert f"{name}={value!r}" in message
    assert option.allowed in message


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_none_means_the_default_everywhere(option):
    for kind in option.applies_to:
        assert validate(kind, {option.name: None}, where=WHERE) == {option.name: None}
        assert resolve(kind, {option.name: None})[option.name] == option.default_for(kind)


def test_specific_messages_name_the_fix():
    with pytest.raises(ValueError, match="use the num_cpus option"):
        validate("task", {"resources": {"CPU": 2}}, where=WHERE)
    with pytest.raises(ValueError, match="use the num_gpus option"):
        validate("actor", {"resources": {"GPU": 1}}, where=WHERE)
    with pytest.raises(ValueError, match="0 would never let the generator run"):
        validate("method", {"_generator_backpressure_num_objects": 0}, where=WHERE)
    with pytest.raises(TypeError, match="a PlacementGroupSchedulingStrategy or a NodeAffinitySchedulingStrategy"):
        validate("task", {"scheduling_strategy": object()}, where=WHERE)


def test_validate_returns_only_the_given_keys_and_copies_containers():
    resources = {"disk": 1}
    result = validate("task", {"resources": resources, "num_cpus": 2}, where=WHERE)
    assert result == {"resources": {"disk": 1}, "num_cpus": 2}
    resources["disk"] = 99
    assert result["resources"] == {"disk": 1}


def test_unknown_option_names_kind_valid_options_and_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown option 'num_cpu'") as info:
        validate("task", {"num_cpu": 1}, where="@remote on function f")
    message = str(info.value)
    assert message.startswith(
        "@remote on function f: unknown option 'num_cpu' for remote functions")
    assert "Did you mean 'num_cpus'?" in message
    for option in options_for("task"):
        assert option.name in message
    with pytest.raises(ValueError, match="Did you mean 'max_restarts'"):
        validate("actor", {"max_restart": 1}, where=WHERE)
    with pytest.raises(ValueError, match="Did you mean 'num_gpus'"):
        validate("actor", {"NUM_GPUS": 1}, where=WHERE)


def test_unknown_option_without_a_close_name_gives_no_suggestion():
    with pytest.raises(ValueError, match="unknown option 'zzzz'") as info:
        validate("task", {"zzzz": 1}, where=WHERE)
    assert "Did you mean" not in str(info.value)
    assert "Valid options for remote functions:" in str(info.value)


def test_ray_options_actorcore_refuses_say_why():
    with pytest.raises(ValueError, match="'conda' is not supported: conda environments are not built"):
        validate("task", {"runtime_env": {"conda": "base"}}, where=WHERE)
    assert validate("actor", {"runtime_env": {}}, where=WHERE) == {"runtime_env": {}}
    with pytest.raises(ValueError, match="'object_store_memory' is not implemented for tasks"):
        validate("task", {"object_store_memory": 1 << 20}, where=WHERE)
    with pytest.raises(ValueError, match="'max_task_retries' is set on the actor in actorcore"):
        validate("method", {"max_task_retries": 1}, where=WHERE)
    with pytest.raises(ValueError, match="nodes carry no labels in actorcore"):
        validate("task", {"label_selector": {"region": "us"}}, where=WHERE)


def test_object_store_memory_on_an_actor_warns_as_ray_does():
    with pytest.warns(DeprecationWarning, match="object_store_memory on an actor is deprecated"):
        validate("actor", {"object_store_memory": 1 << 20}, where=WHERE)


# Every option name Ray 2.60 accepts, per kind (from its option table and @ray.method).
RAY_TASK_OPTIONS = [
    "label_selector", "fallback_strategy", "accelerator_type", "memory", "name", "num_cpus",
    "num_gpus", "object_store_memory", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "resources", "runtime_env", "scheduling_strategy",
    "enable_task_events", "_labels", "max_calls", "max_retries", "num_returns",
    "retry_exceptions", "_generator_backpressure_num_objects", "_num_objects_per_yield"]
RAY_ACTOR_OPTIONS = [
    "label_selector", "fallback_strategy", "accelerator_type", "memory", "name", "num_cpus",
    "num_gpus", "object_store_memory", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "resources", "runtime_env", "scheduling_strategy",
    "enable_task_events", "_labels", "concurrency_groups", "enable_tensor_transport", "lifetime",
    "max_concurrency", "max_restarts", "max_task_retries", "max_pending_calls", "namespace",
    "get_if_exists", "allow_out_of_order_execution", "_actor_generator_backpressure_num_objects"]
RAY_METHOD_OPTIONS = [
    "num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
    "_generator_backpressure_num_objects", "_num_objects_per_yield", "enable_task_events",
    "tensor_transport", "name"]


@pytest.mark.parametrize(("kind", "name"), [("task", n) for n in RAY_TASK_OPTIONS]
                         + [("actor", n) for n in RAY_ACTOR_OPTIONS]
                         + [("method", n) for n in RAY_METHOD_OPTIONS])
def test_every_ray_option_is_accepted_or_refused_with_its_reason(kind, name):
    if any(option.name == name for option in options_for(kind)):
        assert validate(kind, {name: None}, where=WHERE) == {name: None}
        return
    with pytest.raises(ValueError, match=f"option '{name}' ") as info:
        validate(kind, {name: 1}, where=WHERE)
    message = str(info.value)
    assert "unknown option" not in message and "does not apply" not in message
    reason = options.REFUSED.get(f"{name}@{kind}") or options.REFUSED[name]
    assert f"option {name!r} {reason}." in message


@pytest.mark.parametrize(("kind", "name", "applies"), [
    ("task", "max_restarts", "actor classes"),
    ("task", "get_if_exists", "actor classes"),
    ("actor", "max_retries", "remote functions"),
    ("actor", "num_returns", "remote functions and actor methods"),
    ("method", "num_cpus", "remote functions and actor classes"),
])
def test_an_option_on_the_wrong_kind_says_where_it_applies(kind, name, applies):
    with pytest.raises(ValueError, match="does not apply to") as info:
        validate(kind, {name: 1}, where=WHERE)
    assert f"option {name!r} does not apply to" in str(info.value)
    assert f"it applies to {applies}." in str(info.value)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown option kind 'function'"):
        validate("function", {}, where=WHERE)
    with pytest.raises(ValueError, match="unknown option kind"):
        resolve("class")


_ACCEPTED_AS_NOTHING = {"accelerator_type": None, "label_selector": None,
                        "fallback_strategy": None, "_labels": None, "runtime_env": None}


def test_defaults():
    assert resolve("task") == {
        "num_returns": 1, "num_cpus": 1, "num_gpus": 0, "memory": None, "resources": {},
        "max_retries": 3,
        "retry_exceptions": False, "name": None, "scheduling_strategy": None,
        "_generator_backpressure_num_objects": -1, "placement_group": None,
        "placement_group_bundle_index": None, "placement_group_capture_child_tasks": None, "max_calls": 0,
        "enable_task_events": True, **_ACCEPTED_AS_NOTHING,
    }
    assert resolve("actor") == {
        "num_cpus": 0, "num_gpus": 0, "memory": None, "accelerator_type": None, "resources": {}, "name": None,
        "namespace": None,
        "lifetime": None, "get_if_exists": False, "max_restarts": 0, "max_task_retries": 0,
        "max_concurrency": None, "scheduling_strategy": None, "placement_group": None,
        "placement_group_bundle_index": None, "placement_group_capture_child_tasks": None,
        "concurrency_groups": {},
        "max_pending_calls": -1, "object_store_memory": None, "allow_out_of_order_execution": None,
        "enable_tensor_transport": None, "enable_task_events": True, **_ACCEPTED_AS_NOTHING,
    }
    assert resolve("method") == {"num_returns": 1, "name": None, "_generator_backpressure_num_objects": -1,
                                 "concurrency_group": None, "enable_task_events": True, "tensor_transport": None}


def test_resolve_merges_later_layers_over_earlier_ones():
    decorator = validate("task", {"num_cpus": 2, "max_retries": 0, "resources": {"a": 1}},
                         where="@remote")
    call = validate("task", {"num_cpus": 0.5, "resources": {"b": 2}}, where=WHERE)
    merged = resolve("task", decorator, call)
    assert merged["num_cpus"] == 0.5
    assert merged["max_retries"] == 0
    assert merged["resources"] == {"b": 2}  # a layer's dict replaces, as in Ray
    assert merged["num_returns"] == 1
    assert resolve("task", call, decorator)["num_cpus"] == 2


def test_a_none_layer_value_resets_to_the_default():
    assert resolve("task", {"num_cpus": 2}, {"num_cpus": None})["num_cpus"] == 1
    assert resolve("actor", {"num_cpus": 2}, {"num_cpus": None})["num_cpus"] == 0


def test_resolve_returns_fresh_containers():
    first = resolve("task")
    first["resources"]["x"] = 1
    assert resolve("task")["resources"] == {}


def test_resolve_rejects_keys_that_do_not_apply():
    with pytest.raises(ValueError, match="does not apply to remote functions"):
        resolve("task", {"max_restarts": 1}, where=WHERE)


def test_get_if_exists_needs_a_name_once_merged():
    with pytest.raises(ValueError, match="needs a name") as info:
        resolve("actor", validate("actor", {"get_if_exists": True}, where=WHERE), where=WHERE)
    assert str(info.value).startswith(f"{WHERE}: get_if_exists=True needs a name")
    assert "name='...'" in str(info.value)
    merged = resolve("actor", {"get_if_exists": True}, {"name": "counter"})
    assert merged["get_if_exists"] is True and merged["name"] == "counter"


def test_a_detached_actor_may_be_unnamed():
    assert resolve("actor", {"lifetime": "detached"})["lifetime"] == "detached"


def test_the_schema_is_plain_printable_data():
    for option in OPTIONS:
        assert isinstance(option, Option)
        assert set(option.applies_to) <= set(KINDS)
        assert set(option.defaults) == set(option.applies_to)
        text = repr(option)
        assert option.name in text and "check" not in text
    assert len({option.name for option in OPTIONS}) == len(OPTIONS)
    assert [option.name for option in options_for("method")] == [
        "num_returns", "_generator_backpressure_num_objects", "name", "concurrency_group", "enable_task_events",
        "tensor_transport"]


def test_exports():
    assert sorted(options.__all__) == sorted([
        "KINDS", "OPTIONS", "Option", "REFUSED", "options_for", "resolve", "validate",
    ])
