"""Object-transfer micro-benchmark: `python -m benchmarks.transfer [--json] [--size MB] [--repeat N]`.

Times `actorcore.objects.transfer.pull` alone, on loopback: the serving `TransferServer` runs
in a child process (as another node would) over an object held in anonymous memory; the
puller writes into a pre-faulted writable mapping (as into the node's arena). For each chunk
size (the server's; a new child each) it times pulls over 1, 2 and 4 streams, on one
connection and on two, and once with the checksum switched off on both sides (what it
costs). Reports the median of ``--repeat`` pulls, in GB/s (10^9 bytes per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import statistics
import subprocess
import sys
import time

from actorcore.cluster_files import new_token
from actorcore.kernel import run
from actorcore.objects import data_connections, transfer

MB = 1 << 20
CHUNK_SIZES = (MB, 4 * MB)
SHAPES = ((1, 1), (2, 1), (4, 1), (2, 2), (4, 2))  # (streams, connections)
DATA_STREAMS = (1, 2, 4)  # data connections at once


class _Held:
    """A `transfer.Source` over memory that lives as long as the server."""

    def __init__(self, view: memoryview) -> None:
        self.view = view

    def release(self) -> None:
        pass


async def _serve(size: int, chunk_size: int, checksum: bool, token: str) -> None:
    transfer.CHUNK_SIZE = chunk_size
    data_connections.CHECKSUM_ON_LOOPBACK = checksum  # as between hosts without TLS
    if not checksum:
        transfer._crc32c = lambda crc, data: 0
    memory = mmap.mmap(-1, size)
    pattern = bytes(range(256)) * (MB // 256)
    for offset in range(0, size, MB):
        memory[offset:offset + MB] = pattern[:min(MB, size - offset)]
    view = memoryview(memory).toreadonly()
    server = transfer.TransferServer("127.0.0.1:0", token,
                                     lambda object_id: _Held(view) if object_id == "obj" else None)
    await server.start()
    print(server.address, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(0)


def _prefaulted(size: int) -> memoryview:
    memory = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        memory[offset] = 1
    return memoryview(memory)


async def _measure(configs: list[dict], token: str, destination: memoryview, repeat: int) -> dict[str, float]:
    """Median GB/s of each config; configs take turns (one pull each per round), so that load
    from elsewhere on the machine spreads over all of them alike."""
    by_address = transfer._channels.setdefault(asyncio.get_running_loop(), {})
    channels = {}
    rates: dict[str, list[float]] = {config["key"]: [] for config in configs}
    for round_ in range(repeat + 1):  # round 0 warms up (connections, the server's pages)
        for config in configs:
            address, checksum = config["address"], config["checksum"]
            transfer.STREAMS, transfer.CONNECTIONS, transfer.MIN_RANGE = config["streams"], config["connections"], MB
            transfer.DATA_CONNECTIONS, transfer.DATA_STREAMS = config.get("data", False), config["streams"]
            transfer.DATA_MIN_SIZE = 1
            transfer._crc32c = transfer.google_crc32c.extend if checksum else (lambda crc, data: 0)
            data_connections.CHECKSUM_ON_LOOPBACK = checksum
            by_address.pop(address, None)
            if (address, config["connections"]) in channels:
                by_address[address] = channels[address, config["connections"]]
            start = time.perf_counter()
            await transfer.pull(address, token, "obj", destination)
            elapsed = time.perf_counter() - start
            channels[address, config["connections"]] = by_address[address]
            if round_:
                rates[config["key"]].append(destination.nbytes / elapsed / 1e9)
    transfer._crc32c = transfer.google_crc32c.extend
    data_connections.CHECKSUM_ON_LOOPBACK = False
    by_address.clear()
    for pool in channels.values():
        for channel in pool:
            await channel.close()
    return {key: statistics.median(values) for key, values in rates.items()}


def _child(size: int, chunk_size: int, checksum: bool, token: str) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.transfer", "--serve", str(size), str(chunk_size),
         "1" if checksum else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "ACTORCORE_BENCH_TOKEN": token},
    )
    return child, child.stdout.readline().decode().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="object size in MB (MiB)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chunks", default=",".join(str(c // MB) for c in CHUNK_SIZES),
                        help="the server's chunk sizes to try, in MiB, comma-separated")
    parser.add_argument("--shapes", default=",".join(f"{s}x{c}" for s, c in SHAPES),
                        help="streams x connections to try, comma-separated")
    parser.add_argument("--data", default=",".join(str(s) for s in DATA_STREAMS),
                        help="data connections at once to try (bytes over TCP, not gRPC), comma-separated; "
                             "'' for none")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        size, chunk_size, checksum = int(args.serve[0]), int(args.serve[1]), args.serve[2] == "1"
        run(_serve(size, chunk_size, checksum, os.environ["ACTORCORE_BENCH_TOKEN"]))
        return 0
    token = new_token()
    size = args.size * MB
    destination = _prefaulted(size)
    chunk_sizes = [int(float(c) * MB) for c in args.chunks.split(",")]
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
    data_streams = [int(n) for n in args.data.split(",") if n]
    children = []
    configs = []
    try:
        for chunk_size in chunk_sizes:
            for checksum in (True, False):
                child, address = _child(size, chunk_size, checksum, token)
                children.append(child)
                for streams, connections in shapes if checksum else shapes[-1:]:
                    key = f"chunk={chunk_size / MB:g}MiB streams={streams} connections={connections}" + (
                        "" if checksum else " no-checksum")
                    configs.append(dict(key=key, address=address, streams=streams, connections=connections,
                                        checksum=checksum))
                if chunk_size == chunk_sizes[0]:
                    for streams in data_streams:
                        key = f"data streams={streams}" + ("" if checksum else " no-checksum")
                        configs.append(dict(key=key, address=address, streams=streams, connections=1,
                                            checksum=checksum, data=True))
        results = {key: round(rate, 3) for key, rate in run(_measure(configs, token, destination, args.repeat)).items()}
    finally:
        for child in children:
            child.stdin.close()
        for child in children:
            child.wait(30)
    for key, rate in results.items():
        print(f"{key}: {rate:.2f} GB/s", file=sys.stderr)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
