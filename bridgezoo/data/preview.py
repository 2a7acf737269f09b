"""`bridgezoo data preview`: a grid of LQ / GT pairs per task, to look at what a model trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def preview(items_by_task: dict[str, list[dict]], out: str | Path, per_task: int = 3) -> Path:
    """Write a PNG with one row per task and `per_task` (LQ, GT) pairs per row; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(items_by_task)
    cols = 2 * per_task
    fig, axes = plt.subplots(len(tasks), cols, figsize=(2.2 * cols, 2.3 * len(tasks)), squeeze=False)
    for r, task in enumerate(tasks):
        for c in range(per_task):
            for k, key in enumerate(("lq", "gt")):
                ax = axes[r][2 * c + k]
                ax.axis("off")
                if c < len(items_by_task[task]):
                    item = items_by_task[task][c]
                    ax.imshow(np.clip((item[key].permute(1, 2, 0).numpy() + 1) / 2, 0, 1))
                    ax.set_title(f"{task} {key.upper()}" if c == 0 else key.upper(), fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out
