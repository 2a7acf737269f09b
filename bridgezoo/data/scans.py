"""Validating a paired dataset's image files once, not in every process: the full decode that catches truncated
files, NaN/Inf and unsupported formats, and gives each image's size and conversion notes, is kept in a small JSON
record per set of folders under the cache folder (`BRIDGEZOO_CACHE_DIR`, default `$XDG_CACHE_HOME/bridgezoo` or
`~/.cache/bridgezoo`), each file keyed by its absolute path, byte size and modification time. A later process (the
other ranks of a run, the next run, `bench`'s runs on the same data) reads the record and decodes only the files
that are new or changed. Processes that scan the same folders at once take a file lock in turn, so the first
decodes and the others wait and read its record. A file that fails is never recorded: it fails again, naming
itself, wherever it is scanned. Where the cache folder cannot be written, every file is decoded (as before).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .io import read_raw, to_rgb01

CACHE_DIR_ENV = "BRIDGEZOO_CACHE_DIR"
RECORD_VERSION = 1


def cache_dir() -> Path:
    """Where bridgezoo keeps its per-user cache: `BRIDGEZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/bridgezoo`, else
    `~/.cache/bridgezoo`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bridgezoo"


def image_info(path: Path) -> tuple[tuple[int, int], list[str]]:
    """((height, width), conversion notes) of a fully decoded image (so truncated files are caught here)."""
    arr = read_raw(path)
    _, notes = to_rgb01(arr, path)  # NaN / Inf / value range / channel checks
    return (arr.shape[0], arr.shape[1]), notes


def _file_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


@dataclass
class ScanRecord:
    """`image_info` of files, remembered on disk across processes (see the module's docstring).

    Use as a context manager around one dataset's scan: entering takes the lock and reads the record, `info(path)`
    answers from it or decodes, leaving writes the record (what was validated so far, also after an error) and
    releases the lock. `decoded` counts the files this process had to decode."""

    folders: tuple[str, ...]
    path: Path | None = None
    files: dict = field(default_factory=dict)
    decoded: int = 0
    _lock: object = None
    _changed: bool = False

    @classmethod
    def for_folders(cls, folders) -> "ScanRecord":
        names = tuple(sorted(str(Path(f).resolve()) for f in folders))
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:24]
        return cls(names, cache_dir() / "scans" / f"{digest}.json")

    def __enter__(self) -> "ScanRecord":
        from filelock import FileLock

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.path) + ".lock")
            self._lock.acquire()
        except OSError:  # an unwritable cache folder: validate without a record
            self.path, self._lock = None, None
            return self
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") == RECORD_VERSION and data.get("folders") == list(self.folders):
                self.files = data["files"]
        except (OSError, ValueError, KeyError, TypeError):
            self.files = {}
        return self

    def info(self, path: Path) -> tuple[tuple[int, int], list[str]]:
        """((height, width), notes) of the image at `path`: from the record if the file is unchanged, else decoded
        (raising `DataError` for a bad file) and recorded."""
        key, stamp = str(Path(path).resolve()), _file_key(Path(path))
        entry = self.files.get(key)
        if entry is not None and entry[:2] == stamp:
            return (entry[2], entry[3]), list(entry[4])
        if entry is not None:  # the file changed: forget it until it validates again
            del self.files[key]
            self._changed = True
        size, notes = image_info(path)
        self.decoded += 1
        self.files[key] = [*stamp, size[0], size[1], notes]
        self._changed = True
        return size, notes

    def __exit__(self, *exc) -> None:
        try:
            if self.path is not None and self._changed:
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"version": RECORD_VERSION, "folders": list(self.folders),
                                           "files": self.files}))
                os.replace(tmp, self.path)
        except OSError:
            pass  # the record is an optimisation: a failed write only means the next process decodes again
        finally:
            if self._lock is not None:
                self._lock.release()
