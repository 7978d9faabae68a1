"""`actorcore supervise` over a service's life: reloads, escalation, a standby daemon.

- reload (`actorcore supervise reload`, and SIGHUP): added services start, removed ones stop,
  changed ones restart (restored from their checkpoint), unchanged ones keep their process;
  an invalid spec changes nothing and the command says why;
- a service crashing in a loop exceeds its group's window: the group (one_for_all) restarted
  its sibling with it each time, then escalates; the root gives up, the daemon exits 1 and
  `supervise status` reports the escalations;
- etcd killed and then frozen past the TTL: the daemon and its services ride it out;
- a standby daemon: waits while the leader lives, takes over a leader killed with -9 within the
  lease TTL (plus etcd's 0.5 s expiry tick) without restarting any service, and a leader
  stopped gracefully hands its services over running.

One single-node cluster for the module (tests/services/conftest.py; lease TTL: tests.multinode.conftest.LEASE_TTL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from actorcore.testing import wait_until
from tests.multinode.conftest import LEASE_TTL, etcd_pid
from tests.services.helpers import run, start_daemon, stop_daemon, stop_daemons, wait_for_checkpoint, wait_for_log


def status(cluster) -> dict:
    return json.loads(cluster.cli("supervise", "status", "--address", cluster.address, "--json").stdout)


def pids(cluster, *names: str) -> dict:
    """The pid of each named service, or None for one that does not exist."""
    return run(cluster, f"""
        found = {{}}
        for name in {list(names)!r}:
            try:
                found[name] = ray.get(ray.get_actor(name).pid.remote(), timeout=10)
            except ValueError:
                found[name] = None
        print(json.dumps(found))
    """)


SPEC_V1 = """
[supervisor]
max_restarts = 10
period = 10

[services.r_same]
class = "examples.services.counter:Counter"

[services.r_gone]
class = "examples.services.counter:Counter"

[services.r_changed]
class = "examples.services.counter:Counter"
checkpoint_interval = 0.2
"""

SPEC_V2 = """
[supervisor]
max_restarts = 10
period = 10

[services.r_same]
class = "examples.services.counter:Counter"

[services.r_changed]
class = "examples.services.counter:Counter"
kwargs = { start = 100 }
checkpoint_interval = 0.2

[services.r_group]
strategy = "one_for_all"

[services.r_group.services.r_new]
class = "examples.services.kv:KV"
"""


@pytest.mark.timeout(180)
def test_reload_starts_added_stops_removed_restarts_changed_and_leaves_the_rest(cluster, tmp_path):
    log, spec = tmp_path / "daemon.log", tmp_path / "services.toml"
    spec.write_text(SPEC_V1)
    daemon = start_daemon(cluster, spec, log)
    try:
        wait_for_log(daemon, log, "supervising")
        before = pids(cluster, "r_same", "r_gone", "r_changed")
        counted = run(cluster, """
            handle = ray.get_actor("r_changed")
            print(json.dumps(ray.get(handle.incr.remote(7))))
        """)
        assert counted == 7
        wait_for_checkpoint(cluster, "r_changed", {"count": 7}, log)

        spec.write_text(SPEC_V2)
        reloaded = cluster.cli("supervise", "reload", "--address", cluster.address, "--json")
        result = json.loads(reloaded.stdout)
        assert result["ok"] and result["added"] == ["r_group"] and result["removed"] == ["r_gone"], result
        assert result["changed"] == ["r_changed"] and result["errors"] == [], result
        after = pids(cluster, "r_same", "r_gone", "r_changed", "r_new")
        assert after["r_same"] == before["r_same"]  # untouched
        assert after["r_gone"] is None  # stopped
        assert after["r_changed"] not in (None, before["r_changed"])  # restarted...
        restored = run(cluster, """
            handle = ray.get_actor("r_changed")
            print(json.dumps([ray.get(handle.get.remote()), ray.get(handle.was_restored.remote())]))
        """)
        assert restored == [7, True]  # ...from its checkpoint
        assert after["r_new"] is not None
        report = status(cluster)
        assert [group["group"] for group in report["daemon"]["tree"]["children"] if "group" in group] == ["r_group"]
        assert "r_gone" not in [row["name"] for row in report["services"]]
        table = cluster.cli("supervise", "status", "--address", cluster.address).stdout
        print(table)
        assert "last reload" in table and "r_group" in table and "└─ r_new" in table, table

        # SIGHUP does the same; a change of a group's policy reconfigures it in place
        spec.write_text(SPEC_V2.replace('strategy = "one_for_all"', 'strategy = "rest_for_one"')
                        .replace('[services.r_same]\nclass = "examples.services.counter:Counter"',
                                 '[services.r_same]\nclass = "examples.services.counter:Counter"\n'
                                 'kwargs = { start = 1 }'))
        daemon.send_signal(signal.SIGHUP)
        wait_for_log(daemon, log, "reloaded the spec", count=2)
        again = pids(cluster, "r_same", "r_changed", "r_new")
        assert again["r_same"] != after["r_same"]
        assert again["r_changed"] == after["r_changed"] and again["r_new"] == after["r_new"]
        # the daemon logs the reload before its record in etcd shows the new tree
        wait_until(lambda: status(cluster)["daemon"]["tree"]["children"][2]["strategy"] == "rest_for_one", 30,
                   "the daemon's record to show the group's new strategy")

        # an invalid spec: nothing changes, and the reload says which field
        spec.write_text(SPEC_V2.replace('kwargs = { start = 100 }', 'kwargs = { start = 100 }\nreplicas = 0'))
        failed = cluster.cli("supervise", "reload", "--address", cluster.address, check=False)
        assert failed.returncode == 1 and "'replicas'" in failed.stderr and "r_changed" in failed.stderr, failed
        assert pids(cluster, "r_same", "r_changed", "r_new") == again
    finally:
        assert stop_daemon(daemon, log) == 0, log.read_text()


SPEC_CRASH_LOOP = """
[supervisor]
strategy = "one_for_one"
max_restarts = 0
period = 60

[services.steady]
class = "examples.services.counter:Counter"

[services.pair]
strategy = "one_for_all"
max_restarts = 2
period = 60

[services.pair.services.partner]
class = "examples.services.counter:Counter"

[services.pair.services.crasher]
class = "tests.services.flaky:Crasher"
kwargs = { after = 0.5 }
"""


@pytest.mark.timeout(150)
def test_a_service_crashing_in_a_loop_escalates_and_the_daemon_reports_it(cluster, tmp_path):
    log, spec = tmp_path / "daemon.log", tmp_path / "services.toml"
    spec.write_text(SPEC_CRASH_LOOP)
    daemon = start_daemon(cluster, spec, log)
    try:
        assert daemon.wait(90) == 1, log.read_text()  # the root gave up: the daemon ends, exit code 1
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        raise AssertionError(f"the daemon did not give up:\n{log.read_text()}") from None
    report = status(cluster)
    daemon_record = report["daemon"]
    assert daemon_record["state"] == "failed" and "pair" in daemon_record["reason"], daemon_record
    escalations = [(e["supervisor"], e["child"]) for e in daemon_record["escalations"]]
    assert escalations == [("pair", "crasher"), ("root", "pair")], daemon_record["escalations"]
    rows = {row["name"]: row for row in report["services"]}
    assert rows["crasher"]["restarts"] == 2 and rows["partner"]["restarts"] == 2  # one_for_all
    assert rows["steady"]["restarts"] == 0
    assert "ALIVE" not in {rows[name]["state"] for name in ("steady", "partner", "crasher")}, rows
    table = cluster.cli("supervise", "status", "--address", cluster.address).stdout
    print(table)
    assert "daemon: failed" in table and "escalation: supervisor 'pair'" in table, table
    assert pids(cluster, "steady", "partner") == {"steady": None, "partner": None}


SPEC_STANDBY = """
[services.held]
class = "examples.services.counter:Counter"
checkpoint_interval = 0.2
"""


@pytest.mark.timeout(180)
def test_a_standby_daemon_takes_over_without_restarting_the_services(cluster, tmp_path):
    spec = tmp_path / "services.toml"
    spec.write_text(SPEC_STANDBY)
    logs = [tmp_path / f"daemon-{i}.log" for i in range(3)]
    leader = start_daemon(cluster, spec, logs[0])
    standby = second = None
    try:
        wait_for_log(leader, logs[0], "supervising")
        first = run(cluster, """
            handle, pid = answer("held")
            print(json.dumps({"pid": pid, "count": ray.get(handle.incr.remote(3))}))
        """)
        standby = start_daemon(cluster, spec, logs[1])
        wait_for_log(standby, logs[1], "standby: another daemon leads")
        report = status(cluster)
        assert report["daemon"]["pid"] == leader.pid
        assert [s["pid"] for s in report["daemon"]["standbys"]] == [standby.pid]

        leader.kill()  # -9: its lease expires, the standby takes over
        killed = time.monotonic()
        leader.wait()
        led = wait_for_log(standby, logs[1], "leading: this daemon keeps the services", timeout=30)
        adopted = wait_for_log(standby, logs[1], "adopted a running service", timeout=30)
        takeover = adopted - killed
        print(f"\nstandby took over {led - killed:.2f} s after the leader's kill -9, "
              f"services adopted after {takeover:.2f} s (lease TTL {LEASE_TTL} s)")
        assert takeover < LEASE_TTL + 10, takeover  # the lease lapsed, then it took over (generous: a loaded machine)
        after = run(cluster, """
            handle, pid = answer("held")
            print(json.dumps({"pid": pid, "count": ray.get(handle.get.remote())}))
        """)
        assert after == first  # nothing restarted
        assert "started a service" not in logs[1].read_text()

        # a graceful stop with a standby waiting hands the services over, running
        second = start_daemon(cluster, spec, logs[2])
        wait_for_log(second, logs[2], "standby: another daemon leads")
        standby.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert standby.wait(60) == 0, logs[1].read_text()
        wait_for_log(second, logs[2], "adopted a running service", timeout=30)
        print(f"handed over in {time.monotonic() - stopped:.2f} s")
        assert run(cluster, """
            handle, pid = answer("held")
            print(json.dumps({"pid": pid, "count": ray.get(handle.get.remote())}))
        """) == first
        assert status(cluster)["daemon"]["pid"] == second.pid
    finally:
        stop_daemons((second, logs[2]), (standby, logs[1]), (leader, logs[0]))
    assert pids(cluster, "held") == {"held": None}  # the last daemon, alone, stopped it



@pytest.mark.timeout(180)
def test_a_frozen_leader_steps_down_when_it_wakes_and_the_daemons_do_not_fight(cluster, tmp_path):
    spec = tmp_path / "services.toml"
    spec.write_text(SPEC_STANDBY.replace("held", "shared"))
    logs = [tmp_path / f"daemon-{i}.log" for i in range(2)]
    leader = start_daemon(cluster, spec, logs[0])
    standby = None
    try:
        wait_for_log(leader, logs[0], "supervising")
        first = run(cluster, """
            handle, pid = answer("shared")
            print(json.dumps({"pid": pid, "count": ray.get(handle.incr.remote(2))}))
        """)
        standby = start_daemon(cluster, spec, logs[1])
        wait_for_log(standby, logs[1], "standby: another daemon leads")
        leader.send_signal(signal.SIGSTOP)  # frozen: its lease lapses, the standby leads
        try:
            wait_for_log(standby, logs[1], "adopted a running service", timeout=30)
        finally:
            leader.send_signal(signal.SIGCONT)
        wait_for_log(leader, logs[0], "stepped down; standing by", timeout=30)
        wait_for_log(leader, logs[0], "standby: another daemon leads", timeout=30)
        report = status(cluster)
        assert report["daemon"]["pid"] == standby.pid, report["daemon"]
        assert [s["pid"] for s in report["daemon"]["standbys"]] == [leader.pid]
        assert run(cluster, """
            handle, pid = answer("shared")
            print(json.dumps({"pid": pid, "count": ray.get(handle.get.remote())}))
        """) == first  # neither daemon restarted it
        assert "started a service" not in logs[1].read_text()
    finally:
        stop_daemons((leader, logs[0]), (standby, logs[1]))


@pytest.mark.timeout(180)
def test_the_daemon_and_its_services_ride_out_an_etcd_crash_and_an_outage_longer_than_the_ttl(cluster, tmp_path):
    """etcd killed with -9 (the head starts it again), then frozen for longer than the lease TTL:
    the daemon goes on leading (etcd's retries absorb both), nothing is restarted, and the
    checkpoints go on. (A daemon whose own lease does lapse steps down: the frozen-leader test.)"""
    spec, log = tmp_path / "services.toml", tmp_path / "daemon.log"
    spec.write_text(SPEC_STANDBY.replace("held", "hardy"))
    daemon = start_daemon(cluster, spec, log)
    try:
        wait_for_log(daemon, log, "supervising")
        first = run(cluster, """
            handle, pid = answer("hardy")
            print(json.dumps({"pid": pid, "count": ray.get(handle.incr.remote(4))}))
        """)
        old = etcd_pid(cluster.home)
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: _etcd_back(cluster.home, old), 30, "etcd to be started again")
        frozen = etcd_pid(cluster.home)
        os.kill(frozen, signal.SIGSTOP)
        try:
            time.sleep(LEASE_TTL + 1.0)  # the outage itself
        finally:
            os.kill(frozen, signal.SIGCONT)
        resumed = time.monotonic()
        after = run(cluster, """
            handle, pid = answer("hardy")
            print(json.dumps({"pid": pid, "count": ray.get(handle.incr.remote(1))}))
        """, log)
        assert after == {"pid": first["pid"], "count": first["count"] + 1}, log.read_text()
        assert daemon.poll() is None, log.read_text()

        def checkpointed() -> dict | None:
            report = status(cluster)
            (row,) = [row for row in report["services"] if row["name"] == "hardy"]
            fresh = row["checkpoint_age"] is not None and row["checkpoint_age"] < time.monotonic() - resumed
            return report if fresh and report["daemon"]["state"] == "running" else None

        report = wait_until(checkpointed, 30, "a checkpoint made after the outage", details=log.read_text)
        assert report["daemon"]["pid"] == daemon.pid
        assert "started a service" not in log.read_text().split("supervising", 1)[1], log.read_text()
    finally:
        assert stop_daemon(daemon, log) == 0, log.read_text()


def _etcd_back(home, old: int) -> bool:
    try:
        return etcd_pid(home) != old
    except AssertionError:
        return False
