"""Change sets: the incremental updates ``visearch index update`` applies.

A change set lists new or changed products (with their 512-d vector), payload-only
changes (a price or rating moved: no re-embedding) and removed products. It is a
JSON file::

    {
      "format": "visearch-changeset/1",
      "upsert": [
        {"product_id": "p000123", "vector": [0.01, ...512 floats...],
         "payload": {"article": "81234567", "category": "dress", "price": 2490.0, ...}}
      ],
      "set_payload": [{"product_id": "p000042", "payload": {"price": 1990.0, "rating": 4.8}}],
      "delete": ["p000007"]
    }

or a Parquet file with one row per change and columns ``op`` (``upsert``,
``set_payload`` or ``delete``), ``product_id``, ``vector`` (list of floats, upserts
only) and ``payload`` (a JSON object as text; optional for upserts, required for
``set_payload``, empty for deletes).

Semantics: an upsert with a payload replaces the product's vector and whole card; an
upsert without a payload changes only the vector of a product the index has (and
gives a new product just its ``product_id``); ``set_payload`` merges the given fields
into the card; deleting a product that is already gone is counted, not an error.
A product may appear once per change set. Everything is checked before anything is
written: any problem raises :class:`~visearch.errors.DatasetError` naming the entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index.validation import as_matrix, check_product_id, clean_payload, normalise_rows

__all__ = ["FORMAT", "ChangeSet", "load_changeset"]

FORMAT = "visearch-changeset/1"
_OPS = ("upsert", "set_payload", "delete")


@dataclass(frozen=True)
class ChangeSet:
    """A validated change set; build one with :meth:`create` or :func:`load_changeset`."""

    source: str
    full_dim: int
    upsert_ids: list[str]
    upsert_vectors: np.ndarray
    upsert_payloads: list[dict[str, Any] | None]
    payload_ids: list[str]
    payload_sets: list[dict[str, Any]]
    delete_ids: list[str]
    digest: str

    @property
    def is_empty(self) -> bool:
        return not (self.upsert_ids or self.payload_ids or self.delete_ids)

    def __len__(self) -> int:
        return len(self.upsert_ids) + len(self.payload_ids) + len(self.delete_ids)

    @classmethod
    def create(
        cls,
        *,
        upserts: Iterable[Mapping[str, Any]] = (),
        payload_updates: Iterable[Mapping[str, Any]] = (),
        deletes: Iterable[str] = (),
        full_dim: int = 512,
        source: str = "change set",
    ) -> ChangeSet:
        """Validate the parts of a change set.

        Args:
            upserts: ``{"product_id", "vector", "payload"?}`` mappings.
            payload_updates: ``{"product_id", "payload"}`` mappings.
            deletes: product ids.
            full_dim: the vector size the index holds.
            source: a name for messages (the file path).

        Raises:
            DatasetError: unknown keys, a product named twice, a vector of the wrong
                size / with NaN / all zeros, a payload of the wrong shape or types.
        """
        seen: dict[str, str] = {}

        def claim(pid: Any, where: str) -> str:
            pid = check_product_id(pid, where=where)
            if pid in seen:
                raise DatasetError(f"{where}: product {pid!r} already appears in {seen[pid]}; one change per product")
            seen[pid] = where
            return pid

        up_ids: list[str] = []
        up_vecs: list[np.ndarray] = []
        up_payloads: list[dict[str, Any] | None] = []
        for i, entry in enumerate(upserts):
            where = f"{source}: upsert[{i}]"
            _keys(entry, where, required={"product_id", "vector"}, optional={"payload"})
            pid = claim(entry["product_id"], where)
            vec = as_matrix(entry["vector"], full_dim, what=f"{where} ({pid!r}) vector", error=DatasetError)
            if vec.shape[0] != 1:
                raise DatasetError(f"{where} ({pid!r}): vector must be one list of {full_dim} floats")
            normalise_rows(vec, what=f"{where} ({pid!r}) vector", error=DatasetError)
            up_ids.append(pid)
            up_vecs.append(vec[0])
            payload = entry.get("payload")
            up_payloads.append(None if payload is None else clean_payload(payload, pid, where=where))
        pay_ids: list[str] = []
        pay_sets: list[dict[str, Any]] = []
        for i, entry in enumerate(payload_updates):
            where = f"{source}: set_payload[{i}]"
            _keys(entry, where, required={"product_id", "payload"}, optional=set())
            pid = claim(entry["product_id"], where)
            pay_ids.append(pid)
            pay_sets.append(clean_payload(entry["payload"], pid, where=where, partial=True))
        del_ids: list[str] = []
        if isinstance(deletes, (str, bytes)):
            raise DatasetError(f"{source}: delete must be a list of product ids, got a single string")
        for i, pid in enumerate(deletes):
            del_ids.append(claim(pid, f"{source}: delete[{i}]"))
        vectors = np.stack(up_vecs).astype(np.float32) if up_vecs else np.zeros((0, full_dim), np.float32)
        digest = _digest(up_ids, vectors, up_payloads, pay_ids, pay_sets, del_ids)
        return cls(source, full_dim, up_ids, vectors, up_payloads, pay_ids, pay_sets, del_ids, digest)

    def to_json(self) -> dict[str, Any]:
        """The JSON document this change set would be read from."""
        up = []
        for pid, vec, payload in zip(self.upsert_ids, self.upsert_vectors, self.upsert_payloads, strict=True):
            entry: dict[str, Any] = {"product_id": pid, "vector": [float(x) for x in vec]}
            if payload is not None:
                entry["payload"] = payload
            up.append(entry)
        return {
            "format": FORMAT,
            "upsert": up,
            "set_payload": [
                {"product_id": p, "payload": s} for p, s in zip(self.payload_ids, self.payload_sets, strict=True)
            ],
            "delete": list(self.delete_ids),
        }

    def save(self, path: str | Path) -> Path:
        """Write the change set as ``.json`` or ``.parquet`` (by suffix)."""
        path = Path(path)
        if path.suffix == ".json":
            path.write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")
            return path
        if path.suffix != ".parquet":
            raise InvalidArgumentError(f"{path}: a change set is saved as .json or .parquet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows: list[tuple[str, str, list[float] | None, str | None]] = []
        for pid, vec, payload in zip(self.upsert_ids, self.upsert_vectors, self.upsert_payloads, strict=True):
            rows.append(
                ("upsert", pid, vec.tolist(), None if payload is None else json.dumps(payload, ensure_ascii=False))
            )
        for pid, payload in zip(self.payload_ids, self.payload_sets, strict=True):
            rows.append(("set_payload", pid, None, json.dumps(payload, ensure_ascii=False)))
        rows.extend(("delete", pid, None, None) for pid in self.delete_ids)
        ops, ids, vecs, payloads = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
        table = pa.table(
            {
                "op": pa.array(ops, pa.string()),
                "product_id": pa.array(ids, pa.string()),
                "vector": pa.array(vecs, pa.list_(pa.float32())),
                "payload": pa.array(payloads, pa.string()),
            }
        )
        pq.write_table(table, path)
        return path


def _keys(entry: Any, where: str, *, required: set[str], optional: set[str]) -> None:
    if not isinstance(entry, Mapping):
        raise DatasetError(f"{where}: expected an object, got {type(entry).__name__}")
    missing = required - set(entry)
    if missing:
        raise DatasetError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = set(entry) - required - optional
    if unknown:
        raise DatasetError(
            f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(required | optional))}"
        )


def _digest(
    up_ids: list[str],
    vectors: np.ndarray,
    up_payloads: list[dict[str, Any] | None],
    pay_ids: list[str],
    pay_sets: list[dict[str, Any]],
    del_ids: list[str],
) -> str:
    """Content hash, independent of entry order and file format: the idempotency key."""
    h = hashlib.sha256()
    for pid, row in sorted(zip(up_ids, range(len(up_ids)), strict=True)):
        h.update(b"U" + pid.encode() + b"\0" + vectors[row].astype("<f4").tobytes())
        h.update(json.dumps(up_payloads[row], sort_keys=True, ensure_ascii=False).encode())
    for pid, payload in sorted(zip(pay_ids, pay_sets, strict=True), key=lambda t: t[0]):
        h.update(b"P" + pid.encode() + b"\0" + json.dumps(payload, sort_keys=True, ensure_ascii=False).encode())
    for pid in sorted(del_ids):
        h.update(b"D" + pid.encode() + b"\0")
    return h.hexdigest()


def load_changeset(path: str | Path, *, full_dim: int = 512) -> ChangeSet:
    """Read and validate a change set from ``.json`` or ``.parquet``.

    Raises:
        NotFoundError: the file does not exist.
        InvalidArgumentError: another suffix.
        DatasetError: unreadable, or any entry is invalid (see :meth:`ChangeSet.create`).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"change set {path} does not exist")
    if path.suffix == ".json":
        return _load_json(path, full_dim)
    if path.suffix == ".parquet":
        return _load_parquet(path, full_dim)
    raise InvalidArgumentError(f"{path}: a change set must be a .json or .parquet file (see docs/index.md)")


def _load_json(path: Path, full_dim: int) -> ChangeSet:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason}); a change set is a UTF-8 JSON file") from e
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: expected a JSON object with "format", "upsert", "set_payload", "delete"')
    if data.get("format") != FORMAT:
        raise DatasetError(f'{path}: "format" must be "{FORMAT}", got {data.get("format")!r}')
    unknown = set(data) - {"format", *_OPS}
    if unknown:
        raise DatasetError(f"{path}: unknown keys {', '.join(sorted(unknown))}; allowed: format, {', '.join(_OPS)}")
    for op in _OPS:
        if not isinstance(data.get(op, []), list):
            raise DatasetError(f'{path}: "{op}" must be a list, got {type(data[op]).__name__}')
    return ChangeSet.create(
        upserts=data.get("upsert", []),
        payload_updates=data.get("set_payload", []),
        deletes=data.get("delete", []),
        full_dim=full_dim,
        source=str(path),
    )


def _load_parquet(path: Path, full_dim: int) -> ChangeSet:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: not a readable Parquet file ({e})") from e
    cols = set(table.column_names)
    if not {"op", "product_id"} <= cols:
        raise DatasetError(
            f"{path}: a Parquet change set needs columns op, product_id (and vector, payload); has {sorted(cols)}"
        )
    unknown = cols - {"op", "product_id", "vector", "payload"}
    if unknown:
        raise DatasetError(f"{path}: unknown columns {sorted(unknown)}; allowed: op, product_id, vector, payload")
    rows = table.to_pylist()
    upserts, payloads, deletes = [], [], []
    for i, row in enumerate(rows):
        where = f"{path}: row {i}"
        op = row.get("op")
        raw = row.get("payload")
        try:
            payload = None if raw is None else json.loads(raw)
        except (TypeError, json.JSONDecodeError) as e:
            raise DatasetError(f"{where}: payload is not a JSON object ({e})") from e
        if op == "upsert":
            if row.get("vector") is None:
                raise DatasetError(f"{where}: an upsert needs a vector of {full_dim} floats")
            entry = {"product_id": row["product_id"], "vector": row["vector"]}
            if payload is not None:
                entry["payload"] = payload
            upserts.append(entry)
        elif op == "set_payload":
            if row.get("vector") is not None:
                raise DatasetError(f"{where}: a set_payload row must not carry a vector; make it an upsert")
            if payload is None:
                raise DatasetError(f"{where}: a set_payload row needs a payload")
            payloads.append({"product_id": row["product_id"], "payload": payload})
        elif op == "delete":
            if row.get("vector") is not None or payload is not None:
                raise DatasetError(f"{where}: a delete row carries only a product_id")
            deletes.append(row["product_id"])
        else:
            raise DatasetError(f"{where}: op must be one of {', '.join(_OPS)}, got {op!r}")
    return ChangeSet.create(
        upserts=upserts, payload_updates=payloads, deletes=deletes, full_dim=full_dim, source=str(path)
    )
