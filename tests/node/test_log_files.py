"""The node's worker log files and their reader, alone: rotation by size with a bounded number
of backups, the bound on ended workers' files, the limits read from the environment, a
LogService's listing, tail and offset reads, and the names it refuses."""

from __future__ import annotations

import asyncio
import os

import pytest

from actorcore.kernel import ActorSystem
from actorcore.node.log_files import LogLimits, RotatingFile, WorkerLogFiles, worker_log_name
from actorcore.node.log_service import LogService, read_from, read_tail
from actorcore.protocol import ListLogFiles, ReadLog

pytestmark = pytest.mark.timeout(60)


def test_a_file_rotates_and_keeps_its_backups(tmp_path):
    file = RotatingFile(tmp_path / "w.out", max_bytes=100, backup_count=2)
    for i in range(10):
        file.write(f"{i:02d}".encode() * 15 + b"\n")  # 31 bytes: three lines a file
    file.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.out", "w.out.1", "w.out.2"]
    assert (tmp_path / "w.out").read_bytes() == b"09" * 15 + b"\n"
    assert (tmp_path / "w.out.1").read_bytes().startswith(b"06")
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert oct((tmp_path / "w.out").stat().st_mode & 0o777) == "0o600"


def test_no_backups_means_the_file_starts_over(tmp_path):
    file = RotatingFile(tmp_path / "w.err", max_bytes=10, backup_count=0)
    file.write(b"123456789\n")
    file.write(b"abc\n")
    file.close()
    assert [p.name for p in tmp_path.iterdir()] == ["w.err"]
    assert (tmp_path / "w.err").read_bytes() == b"abc\n"


def test_ended_workers_keep_their_files_up_to_the_bound(tmp_path):
    files = WorkerLogFiles(tmp_path / "node", LogLimits(max_bytes=1000, backup_count=1, max_dead_workers=2))
    for pid in (11, 12, 13):
        for file in files.open(f"w{pid}", pid).values():
            file.write(b"x\n")
    files.close(11)
    files.close(12)
    assert (tmp_path / "node" / worker_log_name("w11", 11, "stdout")).exists()
    files.close(13)
    names = sorted(p.name for p in (tmp_path / "node").iterdir())
    assert names == ["worker-w12-12.err", "worker-w12-12.out", "worker-w13-13.err", "worker-w13-13.out"]


def test_limits_from_the_environment():
    assert LogLimits.from_env({}) == LogLimits()
    limits = LogLimits.from_env({"ACTORCORE_ROTATION_MAX_BYTES": "2048", "ACTORCORE_ROTATION_BACKUP_COUNT": "0",
                                 "ACTORCORE_MAX_DEAD_WORKER_LOGS": "7"})
    assert limits == LogLimits(max_bytes=2048, backup_count=0, max_dead_workers=7)
    with pytest.raises(ValueError, match=r"\$ACTORCORE_ROTATION_MAX_BYTES must be a whole number >= 1, got '0'"):
        LogLimits.from_env({"ACTORCORE_ROTATION_MAX_BYTES": "0"})
    with pytest.raises(ValueError, match="ACTORCORE_ROTATION_BACKUP_COUNT must be a whole number >= 0, got 'many'"):
        LogLimits.from_env({"ACTORCORE_ROTATION_BACKUP_COUNT": "many"})


def test_tail_and_offset_reads(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(5000)))
    inode = path.stat().st_ino
    data, end, file_id = read_tail(path, 3, 1 << 20)
    assert data == b"line 4997\nline 4998\nline 4999\n" and end == path.stat().st_size and file_id == inode
    assert read_tail(path, 0, 100) == (b"", end, inode)
    data, _, _ = read_tail(path, 5000, 20)
    assert data == b"line 4998\nline 4999\n"  # at most 20 bytes: the newest
    assert read_from(path, end - 10, 100, inode) == (b"line 4999\n"[-10:], end, inode)
    assert read_from(path, 0, 7) == (b"line 0\n", 7, inode)
    assert read_from(path, end + 50, 7) == (b"line 0\n", 7, inode)  # shorter than the offset: rotated
    # rotated, and the new file already longer than the offset: another file id, read from its start
    path.rename(tmp_path / "f.1")
    path.write_bytes(b"".join(f"new {i}\n".encode() for i in range(5000)))
    data, offset, new_id = read_from(path, 100, 6, inode)
    assert (data, offset) == (b"new 0\n", 6) and new_id != inode


def test_the_service_lists_reads_and_refuses_names_outside_its_folder(tmp_path):
    folder = tmp_path / "node1"
    folder.mkdir()
    (folder / "worker-abc-42.out").write_bytes(b"one\ntwo\n")
    (folder / "worker-abc-42.err").write_bytes(b"oops\n")
    (tmp_path / "node-node1.log").write_bytes(b"node says hi\n")
    (tmp_path / "secret").write_bytes(b"no")
    os.symlink(tmp_path / "secret", folder / "link.out")

    async def scenario():
        system = await ActorSystem.start(name="logs-test", uds=False)
        try:
            service = system.spawn(LogService, "node1", str(folder), str(tmp_path / "node-node1.log"))
            listing = await service.ask(ListLogFiles("*"), timeout=10)
            assert listing["node_id"] == "node1"
            assert [f["name"] for f in listing["files"]] == ["node-node1.log", "worker-abc-42.err",
                                                             "worker-abc-42.out"]
            by_pid = await service.ask(ReadLog(pid=42, tail=1), timeout=10)
            inode = (folder / "worker-abc-42.out").stat().st_ino
            assert by_pid == {"name": "worker-abc-42.out", "data": b"two\n", "offset": 8, "size": 8, "file_id": inode}
            by_id = await service.ask(ReadLog(worker_id="abc", stream="stderr"), timeout=10)
            assert by_id["data"] == b"oops\n"
            node_log = await service.ask(ReadLog(name="node-node1.log"), timeout=10)
            assert node_log["data"] == b"node says hi\n"
            for name in ("../secret", "..", "/etc/passwd", "a\\b"):
                answer = await service.ask(ReadLog(name=name), timeout=10)
                assert "is not a log file name" in answer["error"], name
            assert "has no log file 'link.out'" in (await service.ask(ReadLog(name="link.out"), timeout=10))["error"]
            missing = await service.ask(ReadLog(pid=7), timeout=10)
            assert "node node1 has no stdout log of a worker with pid 7" in missing["error"]
            bad = await service.ask(ReadLog(pid=42, stream="stdin"), timeout=10)
            assert bad["error"] == "stream must be 'stdout' or 'stderr', got 'stdin'"
        finally:
            await system.shutdown(timeout=2)

    asyncio.run(scenario())
