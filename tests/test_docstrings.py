"""Every public name of actorcore is documented: each name in `actorcore.__all__`, each public
method and property of its classes, and each exception of `actorcore.exceptions`. A public
function's docstring names each of its parameters, so that it says what they mean."""

from __future__ import annotations

import inspect

import pytest

import actorcore
import actorcore.exceptions

API_NAMES = [name for name in actorcore.__all__ if name not in ("__version__", "exceptions")]


def _public_members(cls: type):
    for name, attribute in vars(cls).items():
        if name.startswith("_"):
            continue
        member = attribute.__func__ if isinstance(attribute, (staticmethod, classmethod)) else attribute
        if inspect.isfunction(member) or isinstance(member, property):
            yield name, member


def _parameters(function) -> list[str]:
    names = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in ("self", "cls") or parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        names.append(parameter.name)
    return names


@pytest.mark.parametrize("name", API_NAMES)
def test_every_public_name_has_a_docstring(name):
    value = getattr(actorcore, name)
    assert (value.__doc__ or "").strip(), f"actorcore.{name} has no docstring"


@pytest.mark.parametrize("name", [n for n in API_NAMES if inspect.isfunction(getattr(actorcore, n))])
def test_a_public_functions_docstring_names_its_parameters(name):
    function = getattr(actorcore, name)
    missing = [p for p in _parameters(function) if p not in function.__doc__]
    assert not missing, f"actorcore.{name}'s docstring does not say what {missing} mean"


@pytest.mark.parametrize("name", [n for n in API_NAMES if inspect.isclass(getattr(actorcore, n))])
def test_every_public_method_of_a_public_class_has_a_docstring(name):
    cls = getattr(actorcore, name)
    undocumented = [member for member, value in _public_members(cls) if not (value.__doc__ or "").strip()]
    assert not undocumented, f"actorcore.{name}: {undocumented} have no docstring"


def test_every_exception_has_a_docstring():
    undocumented = [name for name in actorcore.exceptions.__all__
                    if inspect.isclass(getattr(actorcore.exceptions, name))
                    and not (vars(getattr(actorcore.exceptions, name)).get("__doc__") or "").strip()]
    assert not undocumented, f"exceptions without a docstring: {undocumented}"
