"""Regenerates the gRPC/protobuf stubs from proto/: `python -m actorcore._proto.generate`.

Needs grpcio-tools at the version pinned in pyproject.toml's test extra (the generated code
embeds that version); tests/test_proto.py fails when the committed stubs differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT), help="where the actorcore/_proto tree is written")
    args = parser.parse_args(argv)
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    Path(args.out, "actorcore", "_proto").mkdir(parents=True, exist_ok=True)
    code = protoc.main([
        "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={args.out}",
        f"--grpc_python_out={args.out}", *protos,
    ])
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
