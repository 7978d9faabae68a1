"""Run a program written for Ray on actorcore, unmodified: ``actorcore run SCRIPT [ARGS...]``,
``python -m actorcore.run SCRIPT [ARGS...]``, or ``-m MODULE [ARGS...]`` for a module.

The program runs in this process as ``python SCRIPT ARGS...`` (or ``python -m MODULE``)
would run it: as ``__main__``, with ``sys.argv`` = ``[SCRIPT, *ARGS]``, the script's
directory (the current one for a module) first on ``sys.path``, its exit code (``sys.exit``,
1 for an uncaught exception) and its traceback, without this runner's frames; ``RAY_ADDRESS``
stands for ``ACTORCORE_ADDRESS`` (where ``init()`` connects) if that is not set. Before it
starts, `actorcore.ray_compat.install` makes ``import ray`` and the ``ray.*`` modules that
actorcore provides resolve to actorcore in this process and in the workers that run the
program's tasks and actors (see that module for how workers learn it).
"""

from __future__ import annotations

import argparse
import builtins
import importlib.machinery
import importlib.util
import io
import os
import runpy
import sys
import types
import zipfile

from .env import ADDRESS_ENV
from .ray_compat import install

__all__ = ["RAY_ADDRESS_ENV", "add_run_arguments", "main", "run_from_args", "run_program"]

RAY_ADDRESS_ENV = "RAY_ADDRESS"  # a Ray program's cluster address: ACTORCORE_ADDRESS unless that is set



def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the runner: ``[-m MODULE] [SCRIPT] [ARGS...]``."""
    parser.add_argument("-m", dest="module", metavar="MODULE",
                        help="run library module MODULE as a script (as python -m does)")
    parser.add_argument("program", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]",
                        help="the program's file and its arguments (after -m MODULE: its arguments)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the program `add_run_arguments` parsed; return its exit code (2: bad arguments)."""
    program = list(args.program)
    if program[:1] == ["--"]:
        program = program[1:]
    if args.module is not None:
        return run_program(args.module, program, module=True)
    if not program:
        args.parser.error("the program to run is missing: SCRIPT [ARGS...] or -m MODULE [ARGS...]")
    return run_program(program[0], program[1:])


def run_program(target: str, args: list[str], *, module: bool = False) -> int:
    """Run script `target` (a module if `module`) with arguments `args` as ``__main__``, with
    ``ray`` resolving to actorcore; return its exit code. A `SystemExit` of the program
    propagates, as it ends python; an uncaught exception is printed by ``sys.excepthook``
    and returns 1."""
    if os.environ.get(RAY_ADDRESS_ENV) and not os.environ.get(ADDRESS_ENV):
        os.environ[ADDRESS_ENV] = os.environ[RAY_ADDRESS_ENV]  # where init() connects, as in Ray
    if module:
        sys.path[0] = os.getcwd()
        install()  # before looking for it: its package may import ray
        try:
            found = importlib.util.find_spec(target)
        except (ImportError, ValueError) as error:
            found, reason = None, str(error)
        else:
            reason = f"No module named {target!r}"
        if found is None:
            print(f"actorcore run: {reason}", file=sys.stderr)
            return 1
        sys.argv = [target, *args]  # runpy puts the module's file in argv[0], as python -m does
    else:
        if not os.path.exists(target):
            print(f"actorcore run: can't open file {os.path.abspath(target)!r}: "
                  "[Errno 2] No such file or directory", file=sys.stderr)
            return 2
        sys.argv = [target, *args]
        sys.path[0] = os.path.dirname(os.path.realpath(target))
        install()
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        elif os.path.isdir(target) or zipfile.is_zipfile(target):
            runpy.run_path(target, run_name="__main__")  # its __main__.py, as python runs it
        else:
            _run_file(target)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as error:  # noqa: BLE001 - the program's: reported as python reports it
        trace = error.__traceback__
        while trace is not None and _is_runner(trace.tb_frame):
            trace = trace.tb_next
        sys.excepthook(type(error), error.with_traceback(trace), trace)
        return 1
    return 0


def _run_file(path: str) -> None:
    """Run the script at `path` as python does: in a new ``__main__`` module (it stays
    ``sys.modules["__main__"]`` after it returns, for atexit handlers and pickling by value),
    compiled under its absolute path."""
    filename = os.path.abspath(path)
    with io.open_code(filename) as source:
        code = compile(source.read(), filename, "exec", dont_inherit=True)
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(__file__=filename, __builtins__=builtins, __cached__=None,
                                __loader__=importlib.machinery.SourceFileLoader("__main__", filename))
    sys.modules["__main__"] = main_module
    exec(code, main_module.__dict__)


def _is_runner(frame) -> bool:
    """Whether `frame` is this runner's or runpy's (left out of the program's traceback)."""
    return frame.f_globals is globals() or frame.f_globals is vars(runpy)


def main(argv: list[str] | None = None) -> int:
    """``python -m actorcore.run [-m MODULE] SCRIPT [ARGS...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m actorcore.run",
        description="Run a program written for Ray on actorcore: `import ray` is actorcore.")
    add_run_arguments(parser)
    parser.set_defaults(parser=parser)
    return run_from_args(parser.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
