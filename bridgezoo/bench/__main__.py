"""`python -m bridgezoo.bench --worker SPEC_JSON`: one grid run in a worker process (what the pool and the SLURM
jobs start)."""

import sys

from .pool import worker_main

if len(sys.argv) == 3 and sys.argv[1] == "--worker":
    sys.exit(worker_main(sys.argv[2]))
print("usage: python -m bridgezoo.bench --worker SPEC_JSON (internal; use `bridgezoo bench GRID.toml`)",
      file=sys.stderr)
sys.exit(2)
