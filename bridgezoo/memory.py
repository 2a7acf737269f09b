"""How much memory a computation needs, and how much a device has free.

`peak_tensor_bytes(fn)` runs `fn` under a dispatch mode that follows every tensor storage the computation
creates until it is freed, and returns the largest total alive at once: the peak *extra* memory of `fn` (tensors
that existed before, such as weights and inputs, are not counted). It sees every operator PyTorch dispatches, so it
works the same on a CPU and on a GPU, and it sees the N×N matrices of the math attention kernel but not the
internal tiles of a fused kernel (which are small by design). It does not see allocator caching, fragmentation or
library workspaces (cuDNN): callers add a margin.

`available_bytes(device)` is what the device can still give: on CUDA the driver's free memory plus what PyTorch's
caching allocator holds unused; on a CPU the smallest of MemAvailable (psutil, else /proc/meminfo), the room left
under a cgroup memory limit (containers) and under an address-space rlimit (`ulimit -v`).
"""

from __future__ import annotations

import resource
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .errors import BridgezooError


class NotEnoughMemory(BridgezooError, MemoryError):
    """A computation would not fit in the memory the device has free, even in its smallest form."""


class _LiveStorages(TorchDispatchMode):
    """Counts the bytes of the storages created inside the mode that are still referenced; remembers the peak."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.refs: dict[tuple, list[int]] = {}  # (device, data_ptr) -> [tensors referencing it, bytes]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = (str(t.device), storage.data_ptr())
        if key in self.refs:
            self.refs[key][0] += 1
        else:
            self.refs[key] = [1, storage.nbytes()]
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        weakref.finalize(t, self._release, key)

    def _release(self, key) -> None:
        entry = self.refs.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self.refs[key]


def peak_tensor_bytes(fn, *args, **kwargs) -> tuple[int, object]:
    """(peak bytes of tensors alive at once while `fn(*args, **kwargs)` ran, its result); see the module docstring."""
    mode = _LiveStorages()
    with mode:
        result = fn(*args, **kwargs)
    return mode.peak, result


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure: CUDA's OutOfMemoryError, a MemoryError, or the CPU allocator's
    RuntimeError ("can't allocate memory")."""
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "can't allocate memory" in str(exc)


def peak_bytes(device, fn, *args, **kwargs) -> tuple[int, object]:
    """(peak extra bytes while `fn(*args, **kwargs)` ran on `device`, its result). On CUDA the caching allocator's
    own peak (workspaces included; the device synchronised); elsewhere `peak_tensor_bytes` (its dispatch mode
    loads torch's tracing modules on first use, a one-time ~150 MB of host memory and a few seconds)."""
    device = torch.device(device)
    if device.type != "cuda":
        return peak_tensor_bytes(fn, *args, **kwargs)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    result = fn(*args, **kwargs)
    torch.cuda.synchronize(device)
    return max(torch.cuda.max_memory_allocated(device) - before, 0), result


def _proc_meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_room() -> int | None:
    """Bytes left under the cgroup's memory limit (v2: memory.max − memory.current; v1: limit − usage), or None."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = Path(limit_file).read_text().strip(), int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(int(limit) - usage, 0)
    return None


def _rlimit_room() -> int | None:
    """Bytes of address space left under RLIMIT_AS (`ulimit -v`), or None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(soft - int(line.split()[1]) * 1024, 0)
    except OSError:
        pass
    return soft


def available_bytes(device) -> int:
    """Bytes `device` can still allocate (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        import psutil

        host = psutil.virtual_memory().available
    except ImportError:
        host = _proc_meminfo_available()
    rooms = [r for r in (host, _cgroup_room(), _rlimit_room()) if r is not None]
    return min(rooms) if rooms else 1 << 62
