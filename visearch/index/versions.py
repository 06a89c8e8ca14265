"""Index versions on a local disk: directories, an atomic ``CURRENT`` pointer, a writer lock.

Layout under the index root (``<data_dir>/index`` by default)::

    CURRENT              {"version": "v000003"}: what searches open
    v000002/             a complete version: manifest.json + shard/ (kept for rollback)
    v000003/
    .staging/v000004/    a build or update in progress (or killed: removed by the next one)
    .lock                held (flock) by whoever writes versions

Why it is safe: a version is written under ``.staging/`` and appears under the root
only by ``rename`` once its manifest is on disk; ``CURRENT`` changes by writing a
temporary file and ``os.replace``, which is atomic on POSIX. A process killed at
any point leaves either the old or the new ``CURRENT``, never a half-written one,
and never a half-built version under the root. The lock is an ``flock``, released
by the kernel when its holder dies, so a killed build never blocks the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from visearch.errors import DatasetError, InvalidArgumentError, VisearchError

__all__ = ["VersionStore", "allocated_bytes"]

_VERSION_DIR = re.compile(r"^v\d{6}$")
MANIFEST = "manifest.json"
SHARD = "shard"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def allocated_bytes(path: Path) -> int:
    """Bytes a file or tree really occupies on disk (sparse, preallocated files count what is used)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, f)).st_blocks * 512
    return total


class VersionStore:
    """The filesystem side of :class:`~visearch.index.edge.EdgeIndex` versions."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise InvalidArgumentError(f"index path {self.root} is a file; point VISEARCH_INDEX__PATH at a directory")
        self.staging = self.root / ".staging"
        self.pointer = self.root / "CURRENT"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writer lock; fail at once (not wait) if another writer has it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidArgumentError(f"cannot create the index directory {self.root}: {e.strerror}") from e
        path = self.root / ".lock"
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise VisearchError(
                    f"another index build, update or rollback is running on {self.root} (it holds {path}); "
                    "wait for it to finish"
                ) from e
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def cleanup(self) -> list[str]:
        """Remove what killed builds and updates left behind (call under the lock)."""
        removed: list[str] = []
        if self.staging.is_dir():
            for p in sorted(self.staging.iterdir()):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p.name)
        for p in self.root.glob("CURRENT.tmp-*"):
            p.unlink(missing_ok=True)
            removed.append(p.name)
        return removed

    def current(self) -> str | None:
        """The serving version's id, or ``None`` before the first build."""
        try:
            data = json.loads(self.pointer.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as e:
            raise DatasetError(
                f"{self.pointer} is damaged ({e}); run `visearch index rollback --to VERSION` to rewrite it"
            ) from e
        version = data.get("version") if isinstance(data, dict) else None
        if not isinstance(version, str) or not (self.root / version / MANIFEST).is_file():
            raise DatasetError(
                f"{self.pointer} names {version!r}, which is not a complete version under {self.root}; "
                "run `visearch index rollback --to VERSION` with one that is"
            )
        return version

    def manifests(self) -> list[dict[str, Any]]:
        """Manifests of the complete versions, oldest first."""
        out = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and _VERSION_DIR.match(p.name) and (p / MANIFEST).is_file():
                try:
                    out.append(json.loads((p / MANIFEST).read_text(encoding="utf-8")))
                except (OSError, json.JSONDecodeError) as e:
                    raise DatasetError(f"{p / MANIFEST} is damaged ({e}); delete {p} if it is not serving") from e
        return out

    def stage(self, version: str) -> Path:
        """A fresh directory to write ``version`` into."""
        path = self.staging / version
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def shard_path(self, version: str) -> Path:
        return self.root / version / SHARD

    def commit(self, version: str, staged: Path, manifest: dict[str, Any]) -> None:
        """Write the manifest and move the staged directory under the root (atomic rename)."""
        target = self.root / version
        if target.exists():
            raise VisearchError(f"{target} already exists; remove it if no CURRENT points there")
        data = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        fd = os.open(staged / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(staged, target)
        _fsync_dir(self.root)

    def switch(self, version: str) -> None:
        """Point ``CURRENT`` at ``version``: a temp file, fsync, then ``os.replace``."""
        tmp = self.root / f"CURRENT.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, json.dumps({"version": version}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.pointer)
        _fsync_dir(self.root)

    def drop(self, version: str) -> None:
        """Delete a version: first moved into staging, so a crash mid-delete leaves only leftovers."""
        src = self.root / version
        if not src.exists():
            return
        self.staging.mkdir(parents=True, exist_ok=True)
        dst = self.staging / f"{version}-dropped"
        os.rename(src, dst)
        shutil.rmtree(dst, ignore_errors=True)

    def copy_tree(self, src: Path, dst: Path, progress: Callable[[int, int], None]) -> None:
        """Copy a shard directory, reporting bytes copied."""
        total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
        done = 0

        def copy(a: str, b: str) -> str:
            nonlocal done
            shutil.copy2(a, b)
            done += os.path.getsize(a)
            progress(done, total)
            return b

        progress(0, total)
        shutil.copytree(src, dst, copy_function=copy)
