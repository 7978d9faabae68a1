"""Run the six programs of the Ray Core lecture in order; stop at the first that fails.

Each runs as its own process with this interpreter: `python examples/lecture/run_all.py`.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = [
    "01_parallel_retrieve.py",
    "02_object_store.py",
    "03_wait.py",
    "04_dependencies.py",
    "05_actors.py",
    "06_mapreduce.py",
]


def main() -> int:
    for name in PROGRAMS:
        print(f"=== {name}", flush=True)
        returncode = subprocess.run([sys.executable, str(HERE / name)], check=False).returncode
        if returncode != 0:
            print(f"=== {name} failed (exit code {returncode}); stopping",
                  file=sys.stderr, flush=True)
            return returncode if returncode > 0 else 1
    print("=== all six programs ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
