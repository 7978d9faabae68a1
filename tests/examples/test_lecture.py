"""The Ray Core lecture's programs (Learning Ray, chapter 2) run unchanged on actorcore.

Each program runs as a newcomer runs it, `python examples/lecture/<name>.py`, with this
test's interpreter (so with actorcore, never Ray), in a session of its own: the test checks
what it prints and that it leaves no process behind. Only the lines the lecture prints are
parsed; any other line (a runtime's log lines) is ignored.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from actorcore.testing import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[2]
LECTURE = ROOT / "examples" / "lecture"

DATABASE = ["Learning", "Ray", "Flexible", "Distributed", "Python", "for", "Machine", "Learning"]
RETRIEVED = list(enumerate(DATABASE))

RUNTIME = re.compile(r"^Runtime: (\d+\.\d\d) seconds, data:$")
MAPPER = re.compile(r"^Mapper (\d+), return value (\d+): (.*)$")
WORD_COUNT = re.compile(r"^(\S+): (\d+)$")

PROGRAM_TIMEOUT = 100


def _session_processes(sid: int) -> dict[int, str]:
    """Live processes of session `sid` (the program's), zombies excluded: {pid: ps line}.

    By session, not process group: a runtime's workers may sit in process groups of their own.
    """
    out = subprocess.run(["ps", "-e", "-o", "pid=,stat=,command="],
                         capture_output=True, text=True, check=True).stdout
    left = {}
    for line in out.splitlines():
        fields = line.split(None, 2)
        if len(fields) < 2 or fields[1].startswith("Z"):
            continue
        try:
            if os.getsid(int(fields[0])) == sid:
                left[int(fields[0])] = line.strip()
        except (ProcessLookupError, PermissionError):
            pass
    return left


def run_program(name: str, timeout: float = PROGRAM_TIMEOUT) -> str:
    """Run examples/lecture/<name> to completion; return its stdout, checked to be a success.

    The output goes to anonymous files, not pipes, so that a process left behind holding them
    cannot make the program look unfinished.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, str(LECTURE / name)], cwd=ROOT,
                                stdout=out, stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            timed_out = True
        with contextlib.suppress(WaitTimeout):  # what is left is killed, then reported
            wait_until(lambda: not _session_processes(proc.pid), 0 if timed_out else 30,
                       "the program's processes to end", interval=0.1)
        left = _session_processes(proc.pid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert not timed_out, \
        f"{name} did not finish in {timeout} s\nstdout:\n{stdout}\nstderr:\n{stderr[-3000:]}"
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}\nstderr:\n{stderr[-3000:]}"
    assert not left, f"{name} left processes behind:\n" + "\n".join(left.values())
    return stdout


def _literal(line: str):
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def runtime_blocks(stdout: str) -> list[tuple[float, list]]:
    """The `print_runtime` outputs: (runtime, the (item, word) tuples printed under it)."""
    blocks: list[tuple[float, list]] = []
    for line in stdout.splitlines():
        if match := RUNTIME.match(line):
            blocks.append((float(match.group(1)), []))
        elif blocks and isinstance(value := _literal(line), tuple) and len(value) == 2 \
                and isinstance(value[0], int) and isinstance(value[1], str):
            blocks[-1][1].append(value)
    return blocks


def zen_words() -> list[bytes]:
    """The words the MapReduce program counts, computed as the lecture splits its corpus:
    three partitions of len(corpus) // 3 words each."""
    corpus = subprocess.check_output([sys.executable, "-c", "import this"]).split()
    chunk = len(corpus) // 3
    return corpus[:3 * chunk]


@pytest.mark.timeout(120)
def test_parallel_retrieve_overlaps_the_retrievals():
    blocks = runtime_blocks(run_program("01_parallel_retrieve.py"))
    assert [data for _, data in blocks] == [RETRIEVED, RETRIEVED]
    (serial, _), (parallel, _) = blocks
    assert serial >= 2.8             # 0.0 + 0.1 + ... + 0.7 seconds of sleep, one after the other
    assert 0.7 <= parallel < serial  # at least the longest sleep; under a second on an idle machine


@pytest.mark.timeout(120)
def test_object_store_passes_the_database_by_reference():
    blocks = runtime_blocks(run_program("02_object_store.py"))
    assert len(blocks) == 1
    runtime, data = blocks[0]
    assert data == RETRIEVED
    assert runtime >= 0.7


@pytest.mark.timeout(120)
def test_wait_yields_results_two_at_a_time():
    blocks = runtime_blocks(run_program("03_wait.py"))
    *batches, (total_runtime, all_data) = blocks
    assert len(batches) == 4, blocks
    assert all(len(data) == 2 for _, data in batches), batches
    assert [item for _, data in batches for item in data] == all_data
    assert sorted(all_data) == RETRIEVED
    runtimes = [runtime for runtime, _ in batches]
    assert runtimes == sorted(runtimes) and runtimes[-1] <= total_runtime
    for runtime, data in batches:  # no result is reported before its task has slept
        assert runtime >= max(item for item, _ in data) / 10 - 0.005, batches
    assert runtimes[0] < runtimes[-1], "the first results should come before the last are done"


@pytest.mark.timeout(120)
def test_follow_up_tasks_receive_their_dependencies_results():
    stdout = run_program("04_dependencies.py")
    printed = [value for line in stdout.splitlines()
               if isinstance(value := _literal(line), tuple) and len(value) == 2
               and all(isinstance(part, tuple) for part in value)]
    assert printed == [(RETRIEVED[i], RETRIEVED[i + 1]) for i in [0, 2, 4, 6]]


@pytest.mark.timeout(120)
def test_tasks_increment_an_actors_counter():
    stdout = run_program("05_actors.py")
    lines = stdout.splitlines()
    assert RETRIEVED in [_literal(line) for line in lines]
    counts = [line for line in lines if line.isdigit()]
    assert counts and counts[-1] == "8", stdout


@pytest.mark.timeout(120)
def test_mapreduce_counts_the_words_of_the_zen_of_python():
    stdout = run_program("06_mapreduce.py")
    lines = stdout.splitlines()
    words = zen_words()
    chunk = len(words) // 3

    mapped = [(int(m.group(1)), int(m.group(2)), _literal(m.group(3)))
              for line in lines if (m := MAPPER.match(line))]
    assert [(i, j) for i, j, _ in mapped] == [(i, j) for i in range(3) for j in range(3)]
    for i, j, preview in mapped:  # mapper i's return value j: its words whose ord(first letter) % 3 == j
        expected = [(word.lower(), 1) for word in words[i * chunk:(i + 1) * chunk]
                    if ord(word.lower().decode("utf-8")[0]) % 3 == j]
        assert preview == expected[:2], (i, j)

    last_mapper = max(n for n, line in enumerate(lines) if MAPPER.match(line))
    printed = [(m.group(1), int(m.group(2)))
               for line in lines[last_mapper + 1:] if (m := WORD_COUNT.match(line))]
    reference = Counter(word.lower().decode("utf-8") for word in words)
    assert dict(printed) == dict(reference)
    assert len(printed) == len(reference), "a word was printed twice"
    assert [count for _, count in printed] == sorted(reference.values(), reverse=True)


@pytest.mark.timeout(300)
def test_run_all_runs_the_six_programs():
    stdout = run_program("run_all.py", timeout=280)
    lines = stdout.splitlines()
    programs = sorted(path.name for path in LECTURE.glob("0*.py"))
    assert [line for line in lines if line.startswith("=== ")] == \
        [f"=== {name}" for name in programs] + ["=== all six programs ran"]
    assert [data for _, data in runtime_blocks(stdout)][:3] == [RETRIEVED] * 3


def test_run_all_stops_at_the_first_failure(tmp_path):
    (tmp_path / "run_all.py").write_text((LECTURE / "run_all.py").read_text())
    programs = sorted(path.name for path in LECTURE.glob("0*.py"))
    assert len(programs) == 6
    for n, name in enumerate(programs):
        exit_code = 3 if n == 1 else 0
        (tmp_path / name).write_text(f"import sys\nprint('ran {name}')\nsys.exit({exit_code})\n")
    result = subprocess.run([sys.executable, str(tmp_path / "run_all.py")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3
    ran = [line for line in result.stdout.splitlines() if line.startswith("ran ")]
    assert ran == [f"ran {programs[0]}", f"ran {programs[1]}"]
    assert programs[1] in result.stderr
