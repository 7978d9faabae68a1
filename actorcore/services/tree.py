"""The daemon's supervision tree, built from a spec and changed in place by a reload.

One :class:`supervisor.Supervisor` per group of the spec (the root's strategy / max_restarts /
period; nested groups as nested supervisors) and one child per actor name
(:class:`~actorcore.services.instances.ServiceState`), so strategies, intensity, backoff and
escalation all come from the ``supervisor`` package.

A reload (:meth:`ServiceTree.apply`) compares the new spec with the running one, level by level:
a service or group that is gone stops (its record goes; its last checkpoint stays, so adding
it back restores it); a new one starts, after the existing children of its group (the file's
order applies at the next full start); a service whose table changed restarts in its place
(``Supervisor.replace_child``: a change, not counted as a failure); a group whose policy
changed is reconfigured in place; everything else is left alone. A group restarted later
(escalation) starts from the group's current spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor import Backoff, ChildSpec, Supervisor

from .instances import CALL_TIMEOUT, ServiceState, spec_json
from .spec import GroupSpec, ServiceSpec, SupervisorSpec


class ServiceTree:
    """The running supervisors of one spec (build with :meth:`build`, change with :meth:`apply`)."""

    def __init__(self, owner: Any, spec: SupervisorSpec, classes: dict[str, type],
                 on_event: Callable[[Any], None]) -> None:
        self.owner, self.spec, self.classes, self.on_event = owner, spec, classes, on_event
        self.states: dict[str, ServiceState] = {}
        self.groups: dict[str, GroupSpec] = {}
        self.root: Supervisor | None = None

    def build(self) -> Supervisor:
        """Make the root supervisor of the spec's tree (not started yet) and return it."""
        self._index(self.spec)
        self.root = Supervisor(self._children(self.spec, [self.spec.name]), strategy=self.spec.strategy,
                               max_restarts=self.spec.max_restarts, period=self.spec.period,
                               name=self.spec.name, on_event=self.on_event)
        return self.root

    def describe(self, group: GroupSpec | None = None) -> dict:
        """The tree as JSON data for the daemon's record (``supervise status`` draws it)."""
        group = group or self.spec
        children: list[dict] = []
        for child in group.children:
            if isinstance(child, GroupSpec):
                children.append(self.describe(child))
            else:
                children.append({"service": child.name, "names": child.actor_names()})
        return {"group": group.name, "strategy": group.strategy, "max_restarts": group.max_restarts,
                "period": group.period, "children": children}

    # -- building ---------------------------------------------------------------------------

    def _index(self, group: GroupSpec) -> None:
        self.groups[group.name] = group
        for child in group.children:
            if isinstance(child, GroupSpec):
                self._index(child)

    def _children(self, group: GroupSpec, path: list[str]) -> list[ChildSpec]:
        specs: list[ChildSpec] = []
        for child in group.children:
            if isinstance(child, GroupSpec):
                specs.append(self._group_spec(child, [*path, child.name]))
            else:
                specs.extend(self._service_spec(child, name, path) for name in child.actor_names())
        return specs

    def _service_spec(self, service: ServiceSpec, name: str, path: list[str]) -> ChildSpec:
        state = self.states.get(name)
        if state is None:
            state = self.states[name] = ServiceState(self.owner, service, self.classes[service.name], name, path)
        else:
            state.update(service, self.classes[service.name], path)
        backoff = Backoff(min=service.backoff[0], max=service.backoff[1]) if service.backoff else None
        return ChildSpec(name, state.start, restart=service.restart,  # type: ignore[arg-type]
                         shutdown=CALL_TIMEOUT, backoff=backoff)

    def _group_spec(self, group: GroupSpec, path: list[str]) -> ChildSpec:
        name = group.name

        async def start(info: Any) -> Supervisor:
            current = self.groups[name]  # a reload may have changed it since
            return await Supervisor(self._children(current, path), strategy=current.strategy,
                                    max_restarts=current.max_restarts, period=current.period,
                                    name=name, on_event=self.on_event).start()

        return ChildSpec(name, start, type="supervisor")

    # -- reloading --------------------------------------------------------------------------

    async def apply(self, new: SupervisorSpec, classes: dict[str, type]) -> dict[str, list[str]]:
        """Change the running tree into ``new``; returns the names ``added``, ``removed``,
        ``changed`` and the ``errors`` (a service that failed to start)."""
        assert self.root is not None
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "errors": []}
        self.classes = {**self.classes, **classes}
        await self._apply_group(self.root, self.spec, new, [new.name], changes)
        self.spec = new
        return changes

    async def _apply_group(self, supervisor: Supervisor, old: GroupSpec, new: GroupSpec, path: list[str],
                           changes: dict[str, list[str]]) -> None:
        self.groups[new.name] = new
        if (old.strategy, old.max_restarts, old.period) != (new.strategy, new.max_restarts, new.period):
            supervisor.reconfigure(strategy=new.strategy, max_restarts=new.max_restarts,  # type: ignore[arg-type]
                                   period=new.period)
            changes["changed"].append(new.name)
        before = {child.name: child for child in old.children}
        after = {child.name: child for child in new.children}
        for name, child in reversed(before.items()):
            if name not in after or type(after[name]) is not type(child):
                await self._remove(supervisor, child, changes)
        for name, child in after.items():
            previous = before.get(name)
            if previous is None or type(previous) is not type(child):
                await self._add(supervisor, child, path, changes)
            elif isinstance(child, GroupSpec):
                nested = _running_group(supervisor, name)
                if nested is not None:
                    await self._apply_group(nested, previous, child, [*path, name], changes)
                else:  # between incarnations: it starts from its new spec
                    self._index(child)
                    await self._guard(changes, name, supervisor.replace_child(self._group_spec(child, [*path, name])))
                    changes["changed"].append(name)
            elif self._changed(previous, child):
                await self._change(supervisor, previous, child, path, changes)

    def _changed(self, old: ServiceSpec, new: ServiceSpec) -> bool:
        return spec_json(old) != spec_json(new) or self.states[old.actor_names()[0]].cls is not self.classes[new.name]

    async def _add(self, supervisor: Supervisor, child: ServiceSpec | GroupSpec, path: list[str],
                   changes: dict[str, list[str]]) -> None:
        if isinstance(child, GroupSpec):
            self._index(child)
            await self._guard(changes, child.name, supervisor.start_child(self._group_spec(child, [*path, child.name])))
        else:
            for name in child.actor_names():
                await self._guard(changes, name, supervisor.start_child(self._service_spec(child, name, path)))
        changes["added"].append(child.name)

    async def _remove(self, supervisor: Supervisor, child: ServiceSpec | GroupSpec,
                      changes: dict[str, list[str]]) -> None:
        names = child.actor_names()
        ids = [child.name] if isinstance(child, GroupSpec) else list(reversed(names))
        for child_id in ids:
            await _terminate(supervisor, child_id)
        for name in names:
            state = self.states.pop(name, None)
            if state is not None:
                await state.forget()
        changes["removed"].append(child.name)

    async def _change(self, supervisor: Supervisor, old: ServiceSpec, new: ServiceSpec, path: list[str],
                      changes: dict[str, list[str]]) -> None:
        old_names, new_names = old.actor_names(), new.actor_names()
        for name in reversed(old_names):
            if name not in new_names:
                await _terminate(supervisor, name)
                state = self.states.pop(name, None)
                if state is not None:
                    await state.forget()
        for name in new_names:
            spec = self._service_spec(new, name, path)
            if name in old_names:
                self.states[name].replacing = True
                await self._guard(changes, name, supervisor.replace_child(spec))
            else:
                await self._guard(changes, name, supervisor.start_child(spec))
        changes["changed"].append(new.name)

    @staticmethod
    async def _guard(changes: dict[str, list[str]], name: str, step: Any) -> None:
        try:
            await step
        except Exception as error:  # noqa: BLE001 - reported in the reload's result
            changes["errors"].append(f"{name}: {error}")


def _running_group(supervisor: Supervisor, name: str) -> Supervisor | None:
    for info in supervisor.which_children():
        if info.id == name and isinstance(info.child, Supervisor) and info.child.state == "running":
            return info.child
    return None


async def _terminate(supervisor: Supervisor, child_id: str) -> None:
    from supervisor import ChildNotFoundError

    try:
        await supervisor.terminate_child(child_id)
        await supervisor.delete_child(child_id)
    except ChildNotFoundError:
        pass  # a temporary child is forgotten when it stops
