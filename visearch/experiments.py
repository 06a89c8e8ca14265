"""A/B experiments: variants, sticky assignment, and the versioned store they live in.

An experiment splits users between *variants* by integer weights summing to 100. A
variant names the embedder it searches with (a model reference, usually a registry
alias) and the online vector size (128 or 256) stage 1 of the index uses. A user falls
into one of 100 buckets by a salted hash of their id (different salts keep experiments
independent), and the experiment's *allocation* says which variant owns each bucket.

Changing the weights reallocates as few buckets as it can (:func:`reallocate`): a bucket
moves only out of an arm that shrinks (or is removed), so the users of every other arm
stay where they were. The users who did move are seen in two arms; reports leave them out.

Assignment is a pure function (:func:`assign`), tested without any server. The store
keeps every version of an experiment as its own JSON file; a running service reloads
the newest one without a restart.

>>> exp = Experiment(name="head-size", variants=[
...     Variant(name="d128", weight=50, online_dim=128), Variant(name="d256", weight=50, online_dim=256)])
>>> assign(exp, "user-42").name in ("d128", "d256")
True
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.files import write_text_atomic

__all__ = ["Variant", "Experiment", "Conclusion", "Guardrails", "assign", "bucket", "reallocate", "ExperimentStore",
           "default_experiment", "BUCKETS"]

BUCKETS = 100  # weights are integer percentages
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_FILE = re.compile(r"^v(\d{6})\.json$")


def _checked_name(kind: str, v: str) -> str:
    if not _NAME.match(v):
        raise ValueError(f"{kind} name {v!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return v


class Variant(BaseModel):
    """One arm: what its users are searched with. A ``shadow`` arm (weight 0) serves nobody: it searches a
    copy of the live traffic, and only its latency and its overlap with what was served are recorded."""

    name: str
    weight: int = Field(ge=0, le=BUCKETS)
    embedder: str = "models:/visearch-embedder@champion"
    online_dim: Literal[128, 256] = 128
    index: str | None = Field(None, description="a named index of this embedder's vectors (<index path>-<name>); "
                                                "default: the serving index (the champion's vectors)")
    shadow: bool = False

    @model_validator(mode="after")
    def _shadow_has_no_users(self) -> Variant:
        if self.shadow and self.weight:
            raise ValueError(f"shadow variant {self.name!r} must have weight 0 (it serves nobody)")
        return self

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _checked_name("variant", v)

    @field_validator("index")
    @classmethod
    def _index_ok(cls, v: str | None) -> str | None:
        return None if v is None else _checked_name("index", v)


class Guardrails(BaseModel):
    """Limits per variant over its last ``window`` requests; a breach stops the experiment (everyone to control)."""

    p95_ms: float | None = Field(None, gt=0, description="95th percentile request latency, ms")
    max_error_rate: float | None = Field(None, ge=0, le=1, description="share of requests failing with a 5xx")
    min_requests: int = Field(50, ge=1, description="requests a variant must have had before it is judged")
    window: int = Field(500, ge=10, description="recent requests per variant that are judged")


class Conclusion(BaseModel):
    """How an experiment ended: the arm kept, why, by whom, and the model version promoted (if any)."""

    winner: str
    reason: str
    by: str
    at: float
    promoted: str | None = None  # "models:/name/version -> @champion"


class Experiment(BaseModel):
    """Variants with integer weights summing to 100; ``salt`` keeps experiments independent.

    A stopped (``active`` false) or concluded experiment routes everyone to its control arm.
    """

    name: str
    variants: list[Variant] = Field(min_length=1)
    salt: str = ""
    active: bool = True
    allocation: list[str] | None = None  # bucket -> variant name; left out: contiguous, in the variants' order
    version: int = 0  # set by the store
    created: float | None = None  # set by the store (unix time): which version was live when
    stopped_reason: str | None = None
    concluded: Conclusion | None = None
    guardrails: Guardrails | None = None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _checked_name("experiment", v)

    @model_validator(mode="after")
    def _weights(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.weight for v in self.variants)
        if total != BUCKETS:
            raise ValueError(f"variant weights must sum to {BUCKETS}, got {total} ({', '.join(f'{v.name}={v.weight}' for v in self.variants)})")
        if not self.salt:
            self.salt = self.name
        if self.allocation is not None:
            owned = Counter(self.allocation)
            wanted = {v.name: v.weight for v in self.variants if v.weight}
            if len(self.allocation) != BUCKETS or dict(owned) != wanted:
                raise ValueError(f"allocation must give each variant as many of the {BUCKETS} buckets as its weight;"
                                 f" it gives {dict(owned)} for weights {wanted}")
        return self

    def owners(self) -> list[str]:
        """Which variant owns each bucket (contiguous in the variants' order when no allocation is set)."""
        return self.allocation if self.allocation is not None else reallocate(None, self.variants)

    @property
    def shadows(self) -> list[Variant]:
        return [v for v in self.variants if v.shadow]

    @property
    def control(self) -> Variant:
        """The arm named ``control``, else the first."""
        return next((v for v in self.variants if v.name == "control"), self.variants[0])

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise NotFoundError(f"experiment {self.name!r} has no variant {name!r}; it has {[v.name for v in self.variants]}")


def bucket(salt: str, user_id: str) -> int:
    """The user's bucket 0..99: sha256 of ``salt:user_id``, uniform and stable across machines."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def reallocate(previous: list[str] | None, variants: list[Variant]) -> list[str]:
    """Buckets for ``variants``' weights, moving as few of ``previous``'s as the new weights allow.

    Each variant keeps its lowest buckets up to its new weight; the buckets of arms that
    shrank or went away are handed, lowest first, to the arms that grew, in the variants'
    order. Without a previous allocation the buckets go out contiguously in that order.
    """
    weights = {v.name: v.weight for v in variants}
    owner: list[str | None] = list(previous) if previous is not None else [None] * BUCKETS
    kept: Counter[str] = Counter()
    for b, name in enumerate(owner):
        if name in weights and kept[name] < weights[name]:
            kept[name] += 1
        else:
            owner[b] = None
    free = iter(b for b, name in enumerate(owner) if name is None)
    for v in variants:
        for _ in range(v.weight - kept[v.name]):
            owner[next(free)] = v.name
    return [name for name in owner if name is not None]


def assign(experiment: Experiment, user_id: str) -> Variant:
    """The variant that owns ``user_id``'s bucket in the experiment's allocation (control when it is stopped)."""
    if not user_id:
        raise InvalidArgumentError("a user id is needed to assign a variant")
    if not experiment.active:
        return experiment.control
    return experiment.variant(experiment.owners()[bucket(experiment.salt, user_id)])


def default_experiment(embedder: str, online_dim: int) -> Experiment:
    """What serves when no experiment is set: everyone in one ``control`` arm."""
    dim = online_dim if online_dim in (128, 256) else 128
    return Experiment(name="default", variants=[Variant(name="control", weight=BUCKETS, embedder=embedder, online_dim=dim)],
                      allocation=["control"] * BUCKETS)  # set here, not worked out again for every request


class ExperimentStore:
    """Experiments on disk: ``<root>/<name>/v000001.json``, one file per version, never rewritten.

    A new version is written to a temporary file and renamed into place, so a reader sees
    a whole version or none. The serving experiment is the one named ``serving`` in
    ``<root>/SERVING`` (written the same way), or none.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Every experiment with at least one stored version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_FILE.match(p.name)))

    def put(self, experiment: Experiment) -> Experiment:
        """Store ``experiment`` as its next version and return it with the version set.

        Unless it was given an allocation of its own, it inherits the previous version's,
        changed only as far as the new weights need (:func:`reallocate`).
        """
        versions = self.versions(experiment.name)
        number = (versions or [0])[-1] + 1
        allocation = experiment.allocation
        if allocation is None:
            allocation = reallocate(self.get(experiment.name).owners() if versions else None, experiment.variants)
        stored = Experiment.model_validate({**experiment.model_dump(), "version": number, "allocation": allocation,
                                            "created": time.time()})
        write_text_atomic(self.root / experiment.name / f"v{number:06d}.json", stored.model_dump_json(indent=2), fsync=True)
        return stored

    def get(self, name: str, version: int | None = None) -> Experiment:
        versions = self.versions(name)
        if not versions:
            raise NotFoundError(f"no experiment {name!r} in {self.root}")
        number = versions[-1] if version is None else version
        path = self.root / name / f"v{number:06d}.json"
        if not path.is_file():
            raise NotFoundError(f"experiment {name!r} has no version {number}; it has {versions}")
        try:
            return Experiment.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, ValueError) as e:
            raise DatasetError(f"{path}: not a valid experiment ({e})") from None

    def stop(self, name: str, reason: str) -> Experiment:
        """Route everyone to control from now on: a new, inactive version (a stopped one stays as it is)."""
        current = self.get(name)
        if not current.active:
            return current
        return self.put(current.model_copy(update={"active": False, "stopped_reason": reason}))

    def serve(self, name: str | None) -> None:
        """Make ``name`` the serving experiment (``None``: the default single arm)."""
        if name is not None:
            self.get(name)
        write_text_atomic(self.root / "SERVING", json.dumps({"serving": name}), fsync=True)

    def serving(self) -> Experiment | None:
        marker = self.root / "SERVING"
        if not marker.is_file():
            return None
        name = json.loads(marker.read_text(encoding="utf-8")).get("serving")
        return self.get(name) if name else None

    def stamp(self) -> tuple[str | None, int]:
        """A cheap fingerprint of what serves (name, newest version), for reload checks."""
        marker = self.root / "SERVING"
        if not marker.is_file():
            return None, 0
        name = json.loads(marker.read_text(encoding="utf-8")).get("serving")
        return name, (self.versions(name) or [0])[-1] if name else 0
