"""``actorcore job submit|status|logs|stop|list|delete``: Ray's ``ray job`` commands, over the
head's Jobs API (`actorcore.job_submission`; docs/architecture.md, "Jobs").

Every subcommand takes ``--address http://HOST:PORT`` (the head's dashboard; default:
``$ACTORCORE_ADDRESS`` if it is such a URL, else the head of this machine's cluster) and sends
this machine's cluster token. ``submit -- ENTRYPOINT...`` runs one argument as the shell
command it is, and several as a command line quoted for the shell; unless ``--no-wait`` it
then prints the job's output as it comes and exits 0 only if the job succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time

from . import common

__all__ = ["add_job"]

STOP_WAIT = 30.0  # seconds `job stop` waits for the job to be stopped


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_job(subparsers) -> None:
    """The ``job`` command group."""
    command = subparsers.add_parser("job", help="submit jobs to the cluster and follow them",
                                    description="Submit a shell command to run on the cluster's head as a job, "
                                                "follow its status and output, stop or forget it (Ray's `ray job`).")
    kinds = command.add_subparsers(dest="job_command", metavar="SUBCOMMAND", required=True)

    def sub(name: str, help: str, handler, *, with_id: bool = True) -> argparse.ArgumentParser:
        parser = kinds.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        parser.add_argument("--address", metavar="http://HOST:PORT", default=None,
                            help="the head's dashboard (default: $ACTORCORE_ADDRESS if a URL, else this machine's "
                                 "cluster)")
        if with_id:
            parser.add_argument("job_id", metavar="JOB_ID", help="the job's submission id")
        parser.set_defaults(handler=handler, parser=parser)
        return parser

    submit = sub("submit", "submit ENTRYPOINT as a job", _submit, with_id=False)
    submit.add_argument("--submission-id", "--job-id", dest="submission_id", metavar="ID", default=None,
                        help="the job's id (default: a new one)")
    submit.add_argument("--runtime-env-json", type=_json_object, metavar="JSON", default=None,
                        help='the job\'s runtime_env, e.g. \'{"env_vars": {"K": "V"}}\'')
    submit.add_argument("--working-dir", metavar="DIR", default=None, help="the runtime_env's working_dir")
    submit.add_argument("--metadata-json", type=_json_object, metavar="JSON", default=None,
                        help="metadata to keep with the job (strings to strings)")
    held = " held on the head for the entrypoint while it runs (the job waits PENDING until they are free)"
    submit.add_argument("--entrypoint-num-cpus", type=common.count, metavar="N", default=None, help="CPUs" + held)
    submit.add_argument("--entrypoint-num-gpus", type=common.count, metavar="N", default=None, help="GPUs" + held)
    submit.add_argument("--entrypoint-memory", type=common.count, metavar="BYTES", default=None,
                        help="memory" + held)
    submit.add_argument("--entrypoint-resources", type=_json_object, metavar="JSON", default=None,
                        help="custom resources" + held + ", e.g. '{\"license\": 1}'")
    submit.add_argument("--no-wait", action="store_true", help="return once the job is submitted")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, metavar="-- ENTRYPOINT...",
                        help="the command to run (after --)")
    sub("status", "print a job's status", _status)
    logs = sub("logs", "print a job's output", _logs)
    logs.add_argument("--follow", "-f", action="store_true", help="print what it writes until it ends")
    stop = sub("stop", "stop a job", _stop)
    stop.add_argument("--no-wait", action="store_true", help="return once the stop is asked for")
    sub("list", "list the cluster's jobs", _list, with_id=False)
    sub("delete", "forget an ended job: its record and its output", _delete)


def _client(args: argparse.Namespace):
    from ..job_submission import JobSubmissionClient

    return JobSubmissionClient(args.address)


def _run(command: str, work) -> int:
    """`work()`'s exit code, or 1 with the failure reported."""
    from ..cluster_files import TokenNotFoundError, UnsafeFileError
    from ..job_submission import JobSubmissionError

    try:
        return work()
    except (JobSubmissionError, ConnectionError, ValueError, TokenNotFoundError, UnsafeFileError, OSError) as error:
        return common.fail(f"job {command}", str(error))


def _submit(args: argparse.Namespace) -> int:
    entrypoint = args.entrypoint[1:] if args.entrypoint[:1] == ["--"] else args.entrypoint
    if not entrypoint:
        args.parser.error("the entrypoint is missing: actorcore job submit [OPTIONS] -- COMMAND [ARGS...]")
    command = entrypoint[0] if len(entrypoint) == 1 else shlex.join(entrypoint)
    runtime_env = dict(args.runtime_env_json or {})
    if args.working_dir is not None:
        runtime_env["working_dir"] = args.working_dir

    def work() -> int:
        client = _client(args)
        submission_id = client.submit_job(
            entrypoint=command, submission_id=args.submission_id, runtime_env=runtime_env,
            metadata=args.metadata_json, entrypoint_num_cpus=args.entrypoint_num_cpus,
            entrypoint_num_gpus=args.entrypoint_num_gpus, entrypoint_resources=args.entrypoint_resources,
            entrypoint_memory=None if args.entrypoint_memory is None else int(args.entrypoint_memory))
        print(f"Job '{submission_id}' submitted.", flush=True)
        if args.no_wait:
            print(f"Follow it with: actorcore job logs --follow {submission_id}")
            return 0
        _follow(client, submission_id)
        return _final(client, submission_id)

    return _run("submit", work)


def _follow(client, submission_id: str) -> None:
    async def tail() -> None:
        async for chunk in client.tail_job_logs(submission_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    asyncio.run(tail())


def _final(client, submission_id: str) -> int:
    """Print how the job ended; 0 if it succeeded."""
    info = client.get_job_info(submission_id)
    print(f"Job '{submission_id}' {info.status.value.lower()}" + (f": {info.message}" if info.message else "."))
    return 0 if info.status == "SUCCEEDED" else 1


def _status(args: argparse.Namespace) -> int:
    def work() -> int:
        info = _client(args).get_job_info(args.job_id)
        print(f"Job '{args.job_id}': {info.status.value}")
        if info.message:
            print(f"Message: {info.message}")
        return 0

    return _run("status", work)


def _logs(args: argparse.Namespace) -> int:
    def work() -> int:
        client = _client(args)
        if args.follow:
            _follow(client, args.job_id)
        else:
            sys.stdout.write(client.get_job_logs(args.job_id))
        return 0

    return _run("logs", work)


def _stop(args: argparse.Namespace) -> int:
    def work() -> int:
        client = _client(args)
        if not client.stop_job(args.job_id):
            print(f"Job '{args.job_id}' had already ended: {client.get_job_status(args.job_id).value}")
            return 0
        print(f"Job '{args.job_id}' is being stopped.")
        if args.no_wait:
            return 0
        deadline = time.monotonic() + STOP_WAIT
        while not client.get_job_status(args.job_id).is_terminal():
            if time.monotonic() > deadline:
                return common.fail("job stop", f"job {args.job_id} did not stop within {STOP_WAIT:g} s")
            time.sleep(0.2)
        print(f"Job '{args.job_id}': {client.get_job_status(args.job_id).value}")
        return 0

    return _run("stop", work)


def _list(args: argparse.Namespace) -> int:
    def work() -> int:
        jobs = _client(args).list_jobs()
        if not jobs:
            print("No jobs.")
            return 0
        rows = [["SUBMISSION ID", "STATUS", "START", "ENTRYPOINT"]]
        for job in jobs:
            start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000)) if job.start_time else "-"
            rows.append([job.submission_id, job.status.value, start, job.entrypoint])
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
        return 0

    return _run("list", work)


def _delete(args: argparse.Namespace) -> int:
    def work() -> int:
        _client(args).delete_job(args.job_id)
        print(f"Job '{args.job_id}' deleted.")
        return 0

    return _run("delete", work)
