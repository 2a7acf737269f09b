"""Task conditioning: one network for several restoration tasks that is *told* which task an image has.

A blind universal model (RDBM's and DiffUIR's protocol) must recognise the degradation from the image; a
task-conditioned one (`bridgezoo run --task-conditioned`) gets the task as a label, embedded and added to the time
embedding of a backbone built with `num_tasks` (`bridgezoo.backbone.TaskEmbedding`). `TaskConditioned` binds that
label to the network, so a bridge, its loss and every sampler still call `model(x_t, mu, t)` unchanged: the runner
sets the labels of a batch (`set_tasks`) before it calls `bridge.training_loss` or `bridge.sample`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..devices import moved
from ..errors import OptionError


class TaskConditioned(nn.Module):
    """model(x_t, mu, t) = network(x_t, mu, t, task=index of the bound task) for each image of the batch.

    `tasks`: the task names in the order of the network's embedding table (saved with the run). One bound label
    serves a batch of any size (tiles of one image); otherwise one label per image. The wrapped network is
    `.network`. The labels (a host tensor, `task`) reach the data's device once per `bind`, without blocking the
    host: a sampler calls the model many times with the same labels."""

    def __init__(self, network: nn.Module, tasks: Sequence[str]):
        super().__init__()
        self.network, self.tasks = network, list(tasks)
        self.task: torch.Tensor | None = None
        self._on_device: torch.Tensor | None = None  # `task` on the device it was last used on

    def bind(self, names: str | Sequence[str]) -> None:
        names = [names] if isinstance(names, str) else list(names)
        unknown = sorted({n for n in names if n not in self.tasks})
        if unknown:
            raise OptionError(f"task {unknown[0]!r}: this model was trained on the tasks {', '.join(self.tasks)}")
        self.task = torch.tensor([self.tasks.index(n) for n in names], dtype=torch.long)
        self._on_device = None

    def labels_on(self, device: torch.device) -> torch.Tensor:
        """The bound labels on `device`: copied there (non-blocking) on the first call after `bind`, then reused."""
        if self._on_device is None or self._on_device.device != device:
            self._on_device = moved(self.task, device)
        return self._on_device

    def forward(self, x_t: torch.Tensor, mu: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.task is None:
            raise RuntimeError("a task-conditioned model was called before its task was set (bridgezoo.run.conditioning.set_tasks)")
        task = self.labels_on(x_t.device)
        if task.numel() == 1:
            task = task.expand(x_t.shape[0])
        elif task.numel() != x_t.shape[0]:
            raise RuntimeError(f"{task.numel()} task labels bound for a batch of {x_t.shape[0]} images")
        return self.network(x_t, mu, t, task=task)


def task_names(model: nn.Module) -> list[str] | None:
    """The tasks a task-conditioned model knows, or None for a blind one."""
    for m in model.modules() if isinstance(model, nn.Module) else ():
        if isinstance(m, TaskConditioned):
            return m.tasks
    return None


def set_tasks(model, names: str | Sequence[str]) -> None:
    """Bind the task(s) of the next calls in every `TaskConditioned` inside `model` (its EMA copy has its own);
    a no-op for a blind model."""
    for m in model.modules() if isinstance(model, nn.Module) else ():
        if isinstance(m, TaskConditioned):
            m.bind(names)
