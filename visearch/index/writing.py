"""How a version is written: build, update and rollback, once for both backends.

Every build and every update writes a *new* version next to the serving one and switches
to it atomically once it is complete; the previous versions (``keep_versions`` in all)
stay for :meth:`VersionWrites.rollback`. How a version is stored and switched is the
backend's business (:mod:`visearch.index.edge`: a directory and a ``CURRENT`` file;
:mod:`visearch.index.cluster`: a collection and an alias): the hooks below.
"""

from __future__ import annotations

import abc
import datetime as _dt
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np

from visearch.config import IndexSettings
from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index.types import (
    BuildReport,
    ProductBatch,
    ProgressFn,
    SwitchReport,
    UpdateReport,
    VersionInfo,
    version_id,
    version_number,
)
from visearch.index.validation import as_matrix, check_product_id, clean_payload, split_vectors

if TYPE_CHECKING:
    from visearch.index.changes import ChangeSet

__all__ = ["VersionWrites"]

S = TypeVar("S")  # a backend's handle on a version being written


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _noop(phase: str, done: int, total: int | None) -> None:
    return None


class VersionWrites(abc.ABC, Generic[S]):
    """The write side of an index. Hooks that take a staged handle ``S`` write a version
    that nobody serves yet; only :meth:`_switch` changes what searches see, and it is atomic."""

    settings: IndexSettings

    # ------------------------------------------------------------------ writing
    def build(
        self, batches: Iterable[ProductBatch], *, total: int | None = None, progress: ProgressFn | None = None
    ) -> BuildReport:
        """Write a new version from ``batches`` and switch to it atomically.

        The serving version is untouched until the switch; a failure (bad input, a
        crash, a kill) leaves it serving, and what the failed build wrote is removed
        on failure or, after a crash, by the next build/update.

        Raises:
            DatasetError: duplicate or empty product ids, wrong vector size, NaN or
                zero vectors, payload fields of the wrong type, no products at all.
        """
        progress = progress or _noop
        start = time.perf_counter()
        with self._lock():
            cleaned = self._cleanup()
            info = self._new_info(kind="build", parent=self._current_id())
            staged = self._create(info)
            try:
                seen: set[str] = set()
                done = 0
                progress("upsert", 0, total)
                for batch in batches:
                    ids, full, online, payloads = self._check_batch(batch, seen, done)
                    for i in range(0, len(ids), self.settings.batch_size):
                        j = i + self.settings.batch_size
                        self._upsert(staged, ids[i:j], full[i:j], online[i:j], payloads[i:j])
                    done += len(ids)
                    progress("upsert", done, total)
                if done == 0:
                    raise DatasetError("nothing to index: the input holds no products")
                upserted = time.perf_counter()
                info = self._seal(staged, info, start, progress)
                indexed = time.perf_counter()
            except BaseException:
                self._discard(staged)
                raise
            self._switch(info.version)
            pruned = self._prune()
        self.refresh()
        return BuildReport(
            version=replace(info, current=True),
            upsert_seconds=round(upserted - start, 3),
            index_seconds=round(indexed - upserted, 3),
            cleaned=cleaned,
            pruned=pruned,
        )

    def update(self, changes: ChangeSet, *, progress: ProgressFn | None = None) -> UpdateReport:
        """Apply a change set as a new version (copy of the serving one + changes), then switch.

        New and changed products are upserted with their vectors; payload-only
        changes (price, rating...) are set without touching vectors; deletes of
        products already gone are counted, not errors. Applying the same change set
        again is a no-op (its digest is recorded in the version's manifest).

        Raises:
            NotFoundError: no serving version, or a payload-only change names a
                product the index does not have (nothing is applied then).
            DatasetError: the change set's vectors do not fit the serving version.
        """
        progress = progress or _noop
        start = time.perf_counter()
        with self._lock():
            cleaned = self._cleanup()
            cur_id = self._current_id()
            current = next((v for v in self._list() if v.version == cur_id), None)
            if current is None:
                raise NotFoundError(
                    f"no index version to update at {self.location}; build one first: visearch index build --vectors FILE"
                )
            if changes.full_dim != current.full_dim:
                raise DatasetError(
                    f"{changes.source}: vectors have {changes.full_dim} dims but version {current.version} "
                    f"holds {current.full_dim}-d vectors; re-embed with the same model or rebuild"
                )
            if changes.digest in current.changesets or changes.is_empty:
                return UpdateReport(
                    version=current, applied=False, seconds=round(time.perf_counter() - start, 3), cleaned=cleaned
                )
            info = replace(
                self._new_info(kind="update", parent=current.version, like=current),
                changesets=(*current.changesets, changes.digest),
            )
            staged = self._copy(current, info, progress)
            try:
                counts = self._apply(staged, changes, current.online_dim, progress)
                info = self._seal(staged, info, start, progress)
            except BaseException:
                self._discard(staged)
                raise
            self._switch(info.version)
            pruned = self._prune()
        self.refresh()
        return UpdateReport(
            version=replace(info, current=True),
            applied=True,
            seconds=round(time.perf_counter() - start, 3),
            cleaned=cleaned,
            pruned=pruned,
            **counts,
        )

    def rollback(self, to: str | None = None) -> SwitchReport:
        """Serve an older version again: ``to``, or the newest one older than the serving one.

        Raises:
            NotFoundError: ``to`` is not a kept version, or there is nothing older.
            InvalidArgumentError: ``to`` is already serving.
        """
        start = time.perf_counter()
        with self._lock():
            infos = self._list()
            cur = self._current_id()
            names = ", ".join(v.version for v in infos) or "none"
            if cur is None:
                raise NotFoundError(f"no index version serves at {self.location}; build one first")
            if to is None:
                older = [v for v in infos if v.version < cur]
                if not older:
                    raise NotFoundError(
                        f"nothing to roll back to: {cur} is the oldest version kept (versions: {names}); "
                        "keep more with VISEARCH_INDEX__KEEP_VERSIONS"
                    )
                target = older[-1]
            else:
                found = [v for v in infos if v.version == to]
                if not found:
                    raise NotFoundError(f"unknown index version {to!r}; versions kept: {names}")
                if to == cur:
                    raise InvalidArgumentError(f"{to} is already the serving version")
                target = found[0]
            self._switch(target.version)
        self.refresh()
        return SwitchReport(
            previous=cur, current=replace(target, current=True), seconds=round(time.perf_counter() - start, 3)
        )

    # ------------------------------------------------------------------ helpers
    def _new_info(
        self, *, kind: Literal["build", "update"], parent: str | None, like: VersionInfo | None = None
    ) -> VersionInfo:
        numbers = [version_number(v.version) or 0 for v in self._list()]
        s = self.settings
        return VersionInfo(
            version=version_id(max(numbers, default=0) + 1),
            kind=kind,
            created_at=_now(),
            parent=parent,
            points=0,
            online_dim=like.online_dim if like else s.online_dim,
            full_dim=like.full_dim if like else s.full_dim,
            hnsw_m=like.hnsw_m if like else s.hnsw_m,
            hnsw_ef_construct=like.hnsw_ef_construct if like else s.hnsw_ef_construct,
            quantization=like.quantization if like else s.quantization,
            full_on_disk=like.full_on_disk if like else s.full_on_disk,
        )

    def _check_batch(
        self, batch: ProductBatch, seen: set[str], offset: int
    ) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Validate one input batch: ids unique over the whole build, vectors, payloads."""
        if not isinstance(batch, ProductBatch):
            raise InvalidArgumentError(f"build takes ProductBatch items, got {type(batch).__name__}")
        ids = list(batch.product_ids)
        for i, pid in enumerate(ids):
            check_product_id(pid, where=f"input row {offset + i}")
            if pid in seen:
                raise DatasetError(
                    f"input row {offset + i}: product_id {pid!r} appears twice; keep one row per product"
                )
            seen.add(pid)
        full = as_matrix(batch.vectors, self.settings.full_dim, what="input vectors", ids=ids, error=DatasetError)
        if len(full) != len(ids):
            raise DatasetError(f"input batch at row {offset}: {len(ids)} product ids but {len(full)} vectors")
        full, online = split_vectors(full, self.settings.online_dim, what="input vectors", ids=ids, error=DatasetError)
        raw = batch.payloads if batch.payloads is not None else [{} for _ in ids]
        if len(raw) != len(ids):
            raise DatasetError(f"input batch at row {offset}: {len(ids)} product ids but {len(raw)} payloads")
        payloads = [clean_payload(p, pid, where=f"product {pid!r}") for pid, p in zip(ids, raw, strict=True)]
        return ids, full, online, payloads

    def _apply(self, staged: S, changes: ChangeSet, online_dim: int, progress: ProgressFn) -> dict[str, int]:
        """Apply a validated change set to a staged copy; payload-only changes must hit known products."""
        touched = [*changes.upsert_ids, *changes.payload_ids, *changes.delete_ids]
        existing = self._existing(staged, touched)
        missing = [p for p in changes.payload_ids if p not in existing]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise NotFoundError(
                f"{changes.source}: payload changes for products the index does not have: "
                f"{', '.join(map(repr, missing[:5]))}{more}; send them as upserts with a vector, or drop them"
            )
        total = len(touched)
        done = 0
        progress("apply", 0, total)
        gone = [p for p in changes.delete_ids if p in existing]
        if gone:
            self._delete(staged, gone)
        done += len(changes.delete_ids)
        progress("apply", done, total)
        if changes.upsert_ids:
            full, online = split_vectors(
                changes.upsert_vectors, online_dim, what=changes.source, ids=changes.upsert_ids, error=DatasetError
            )
            step = self.settings.batch_size
            with_payload = [
                i
                for i, p in enumerate(changes.upsert_payloads)
                if p is not None or changes.upsert_ids[i] not in existing
            ]
            vector_only = [
                i for i, p in enumerate(changes.upsert_payloads) if p is None and changes.upsert_ids[i] in existing
            ]
            for i in range(0, len(with_payload), step):
                rows = with_payload[i : i + step]
                ids = [changes.upsert_ids[r] for r in rows]
                payloads = [changes.upsert_payloads[r] or {"product_id": changes.upsert_ids[r]} for r in rows]
                self._upsert(staged, ids, full[rows], online[rows], payloads)
                done += len(rows)
                progress("apply", done, total)
            for i in range(0, len(vector_only), step):
                rows = vector_only[i : i + step]
                self._update_vectors(staged, [changes.upsert_ids[r] for r in rows], full[rows], online[rows])
                done += len(rows)
                progress("apply", done, total)
        for pid, payload in zip(changes.payload_ids, changes.payload_sets, strict=True):
            self._set_payload(staged, pid, payload)
        done += len(changes.payload_ids)
        progress("apply", done, total)
        new = sum(1 for p in changes.upsert_ids if p not in existing)
        return {
            "new": new,
            "changed": len(changes.upsert_ids) - new,
            "payload_only": len(changes.payload_ids),
            "deleted": len(gone),
            "already_absent": len(changes.delete_ids) - len(gone),
        }

    def _seal(self, staged: S, info: VersionInfo, start: float, progress: ProgressFn) -> VersionInfo:
        """Build the graph and write the manifest: the staged version is complete, not yet serving."""
        progress("index", 0, None)
        points = self._finish(staged)
        progress("index", 1, 1)
        info = replace(info, points=points, seconds=round(time.perf_counter() - start, 3))
        self._commit(staged, info)
        return info

    def _prune(self) -> list[str]:
        """Drop the oldest non-serving versions beyond ``keep_versions`` (serving one included)."""
        cur = self._current_id()
        others = [v.version for v in self._list() if v.version != cur]
        excess = len(others) - (self.settings.keep_versions - 1)
        dropped = others[: max(0, excess)]
        for v in dropped:
            self._drop(v)
        return dropped


    # ------------------------------------------------------------------ hooks
    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the index lives, for messages (a path or a URL + collection)."""

    @abc.abstractmethod
    def refresh(self) -> bool:
        """Re-open if another process switched versions; true when the serving version changed."""

    @abc.abstractmethod
    def _lock(self) -> AbstractContextManager[None]:
        """Exclusive right to write versions."""

    @abc.abstractmethod
    def _cleanup(self) -> list[str]:
        """Remove what crashed builds/updates left; return what was removed."""

    @abc.abstractmethod
    def _list(self) -> list[VersionInfo]: ...

    @abc.abstractmethod
    def _current_id(self) -> str | None: ...

    @abc.abstractmethod
    def _create(self, info: VersionInfo) -> S: ...

    @abc.abstractmethod
    def _copy(self, source: VersionInfo, info: VersionInfo, progress: ProgressFn) -> S: ...

    @abc.abstractmethod
    def _upsert(
        self, staged: S, ids: list[str], full: np.ndarray, online: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None: ...

    @abc.abstractmethod
    def _update_vectors(self, staged: S, ids: list[str], full: np.ndarray, online: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _set_payload(self, staged: S, product_id: str, payload: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def _delete(self, staged: S, ids: list[str]) -> None: ...

    @abc.abstractmethod
    def _existing(self, staged: S, ids: list[str]) -> set[str]: ...

    @abc.abstractmethod
    def _finish(self, staged: S) -> int:
        """Build the HNSW graph / wait for it; return the point count."""

    @abc.abstractmethod
    def _commit(self, staged: S, info: VersionInfo) -> None:
        """Make the staged version complete and listable (not yet serving)."""

    @abc.abstractmethod
    def _discard(self, staged: S) -> None: ...

    @abc.abstractmethod
    def _switch(self, version: str) -> None:
        """Atomically make ``version`` the serving one."""

    @abc.abstractmethod
    def _drop(self, version: str) -> None: ...
