"""Run by tests under torchrun: `bridgezoo run` with an extra in-process bridge plugin.

The plugin's bridge `nan-on-rank1` is rdbm whose loss is NaN on process 1 only, from step 3 on (a rank-local
failure, as a bad batch on one GPU would give). Usage: run_worker.py OUT [run options as JSON].
"""

import json
import sys

import torch

import bridgezoo
from bridgezoo.errors import BridgezooError
from bridgezoo.registry import get_bridge, registry
from bridgezoo.run import RunConfig, run


class _Plugin:
    @staticmethod
    @bridgezoo.hookimpl
    def register_bridges(register):
        base = type(get_bridge("rdbm"))

        class NanOnRank1(base):
            calls = 0

            def loss(self, output, x0, mu, x_t, t):
                value = super().loss(output, x0, mu, x_t, t)
                if output.requires_grad:  # training steps only, not the probe
                    NanOnRank1.calls += 1
                    if torch.distributed.is_initialized() and torch.distributed.get_rank() == 1 and NanOnRank1.calls >= 3:
                        return value * float("nan")
                return value

        register(NanOnRank1, name="nan-on-rank1")


if __name__ == "__main__":
    registry().load()
    registry().add_plugin(_Plugin())
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        run(RunConfig(out=sys.argv[1], **options))
    except BridgezooError as exc:
        print(f"rank error: {exc}", file=sys.stderr)
        sys.exit(1)
