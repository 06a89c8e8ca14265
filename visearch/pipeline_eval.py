"""Search measured as shoppers meet it: held-out photos through the whole query, whole catalog indexed.

Each held-out shopper photo goes through the same stages the service runs (in process, or
over HTTP with ``url``), against whatever index serves (build it from every split for the
figure a shopper sees). Two ways of asking are scored:

* ``auto``: the object the service picks by itself; a hit when the true product of the
  object it picked (the true box it overlaps most) is in the results;
* ``tapped``: every true object the shopper could tap, searched through the detection that
  overlaps its true box most (a follow-up search of the same session): each product of a shopper
  photo, and the product a screenshot is about (its first object);
* ``peeking``: products peeking into a screenshot from its edge (a second card below or beside,
  partly cut off), asked the same way and reported apart: what the shopper sent the page for
  is the product it shows.

Article hits (a number read off the photo naming its product) are counted apart. Every
figure is given for all photos and per kind of photo (``by_kind``): ``shopper`` photos of
products in a scene and ``screenshot`` queries (shop pages, stories, photos of a screen),
since shoppers mostly send the latter. The same loop calibrates the exact-match threshold:
the lowest top-1 similarity at which the top result is the very product for at least
``target`` of held-out queries.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from visearch.config import Settings
from visearch.errors import DatasetError, InvalidArgumentError, VisearchError
from visearch.progress import track
from visearch.vision.evaluate import iou

__all__ = ["PipelineClient", "LocalClient", "HttpClient", "evaluate_pipeline", "calibrate_threshold", "iou"]

Box = tuple[float, float, float, float]
MIN_IOU = 0.3  # a detection below this overlap with every true box picked nothing real


class PipelineClient(Protocol):
    """A photo search and its follow-up, answered as the HTTP API's JSON."""

    def photo(self, data: bytes, k: int) -> dict[str, Any]: ...

    def again(self, session_id: str, object_id: int, k: int) -> dict[str, Any]: ...

    def refine(self, session_id: str, object_id: int, text: str, k: int) -> dict[str, Any]: ...


class LocalClient:
    """The in-process pipeline (the same flow the service runs)."""

    def __init__(self, settings: Settings) -> None:
        from visearch.pipeline import SearchPipeline

        self.pipeline = SearchPipeline.from_settings(settings)
        self._latest: Any = None  # only the latest photo is followed up

    def photo(self, data: bytes, k: int) -> dict[str, Any]:
        from visearch.pipeline import answer_to_dict

        answer, session = self.pipeline.photo(data, k)
        self._latest = session
        return {**answer_to_dict(answer), "session_id": "local"}

    def again(self, session_id: str, object_id: int, k: int) -> dict[str, Any]:
        from visearch.pipeline import answer_to_dict

        return answer_to_dict(self.pipeline.again(self._latest, object_id=object_id, k=k))

    def refine(self, session_id: str, object_id: int, text: str, k: int) -> dict[str, Any]:
        from visearch.pipeline import answer_to_dict

        return answer_to_dict(self.pipeline.refine(self._latest, text, object_id=object_id, k=k))


class HttpClient:
    """The running service over HTTP API v1."""

    def __init__(self, url: str, user: str = "eval") -> None:
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=60, headers={"X-User-Id": user})

    def _ok(self, r: Any) -> dict[str, Any]:
        if r.status_code != 200:
            raise VisearchError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}")
        return r.json()

    def photo(self, data: bytes, k: int) -> dict[str, Any]:
        return self._ok(self.http.post("/v1/photo", files={"image": ("photo.jpg", data, "image/jpeg")},
                                       data={"top_k": str(k)}))

    def again(self, session_id: str, object_id: int, k: int) -> dict[str, Any]:
        return self._ok(self.http.post("/v1/search", json={"session_id": session_id, "object_id": object_id, "top_k": k}))

    def refine(self, session_id: str, object_id: int, text: str, k: int) -> dict[str, Any]:
        return self._ok(self.http.post("/v1/refine", json={"session_id": session_id, "object_id": object_id, "text": text,
                                                           "top_k": k}))


@dataclass
class _Query:
    kind: str  # auto | tapped | peeking
    photo_kind: str
    product: str
    ranked: list[str]
    top_score: float | None  # similarity of the first result found by vector (not by an article read)
    top_match: str | None
    top_via: str | None
    article_hit: bool
    category_share: float | None
    category_right: bool | None = None  # the category searched within was the product's (None: every category searched)
    tags_precision: float | None = None  # share of the answer's tags among the product's attributes (None: no tags)


def held_out_photos(data: Path, split: str, limit: int | None = None, kind: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rows of each held-out photo of ``split`` (of ``kind`` when given), every row with its ``kind``."""
    import pyarrow.parquet as pq

    from visearch.synth.dataset import DEFAULT_KIND, SCENE_KINDS

    if kind is not None and kind not in SCENE_KINDS:
        raise InvalidArgumentError(f"--kind must be one of {', '.join(SCENE_KINDS)}, got {kind!r}")
    path = data / "scenes.parquet"
    if not path.is_file():
        raise DatasetError(f"{data}: no scenes.parquet; is it a WB-Synth data set? (visearch synth --out {data})")
    by_photo: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pq.read_table(path).to_pylist():
        r["kind"] = r.get("kind") or DEFAULT_KIND  # sets made before screenshots have no kind: shopper photos
        if r["split"] == split and kind in (None, r["kind"]):
            by_photo[r["image"]].append(r)
    if not by_photo:
        what = "photos" if kind is None else f"{kind} photos"
        hint = " (a set made before screenshots has none; regenerate it with visearch synth)" if kind == "screenshot" else ""
        raise DatasetError(f"{data}: no {what} in split {split!r}{hint}")
    names = _take(by_photo, limit)
    return {n: by_photo[n] for n in names}


def _take(by_photo: dict[str, list[dict[str, Any]]], limit: int | None) -> list[str]:
    """At most ``limit`` photos, each kind by its share (largest remainders), so a limited run still mixes kinds."""
    total = len(by_photo)
    if not limit or limit >= total:
        return sorted(by_photo)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for name in sorted(by_photo):
        by_kind[by_photo[name][0]["kind"]].append(name)
    kinds = sorted(by_kind)
    exact = np.array([limit * len(by_kind[k]) / total for k in kinds])
    quotas = np.floor(exact).astype(int)
    for r in np.argsort(-(exact - quotas), kind="stable")[: limit - quotas.sum()]:
        quotas[r] += 1
    return sorted(name for k, q in zip(kinds, quotas, strict=True) for name in by_kind[k][:q])


def _tags_precision(answer: dict[str, Any], attributes: set[str] | None) -> float | None:
    """Precision@5 of the answer's tags against the product's attribute values (as canonical tags)."""
    tags = answer.get("tags")
    if not tags or attributes is None:
        return None
    texts = [t["text"] for t in tags[:5]]
    return sum(t in attributes for t in texts) / 5


def _score(q_kind: str, photo_kind: str, truth: dict[str, Any], answer: dict[str, Any], categories: dict[str, str],
           object_id: int | None, attributes: dict[str, set[str]] | None = None) -> _Query:
    results = answer["results"]
    ranked = [x["product_id"] for x in results]
    want_cat = categories.get(truth["product_id"])
    cats = [categories.get(p) for p in ranked[:10]]
    share = sum(c == want_cat for c in cats) / len(cats) if cats else None
    hits = {a["product_id"] for a in answer["article_hits"] if object_id is None or a["object_id"] == object_id}
    top = results[0] if results else None
    searched = answer.get("category")
    return _Query(q_kind, photo_kind, truth["product_id"], ranked, top["score"] if top and top["via"] == "vector" else None,
                  top["match"] if top else None, top["via"] if top else None, truth["product_id"] in hits, share,
                  None if searched is None else searched == want_cat,
                  _tags_precision(answer, (attributes or {}).get(truth["product_id"])))


def run_queries(client: PipelineClient, data: Path, split: str = "test", limit: int | None = None, k: int = 10,
                progress: bool = True, kind: str | None = None) -> tuple[list[_Query], list[float]]:
    """Every held-out photo (of ``kind``, or all), auto-picked and tapped; returns the scored queries and photo latencies (ms)."""
    from visearch.catalog import read_catalog
    from visearch.tags.vocabulary import ATTRIBUTE_FACETS, attribute_tags

    photos = held_out_photos(data, split, limit, kind)
    table = read_catalog(data)
    catalog = table.select([c for c in ("product_id", "category", *ATTRIBUTE_FACETS) if c in table.schema.names]).to_pylist()
    categories = {r["product_id"]: r.get("category") for r in catalog}
    attributes = {r["product_id"]: {t.text for t in attribute_tags(r)} for r in catalog}
    queries: list[_Query] = []
    latencies: list[float] = []
    for name in track(list(photos), len(photos), "searching held-out photos", enabled=progress):
        truths = photos[name]
        photo_kind = truths[0]["kind"]
        raw = (data / name).read_bytes()
        t = time.perf_counter()
        answer = client.photo(raw, k)
        latencies.append((time.perf_counter() - t) * 1000)
        boxes = [tuple(o["box"]) for o in answer["objects"]]
        true_boxes = [(float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"])) for r in truths]
        # auto: the truth behind the object the service picked
        picked = answer["picked"]
        overlaps = [iou(boxes[picked], tb) for tb in true_boxes]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= MIN_IOU:
            queries.append(_score("auto", photo_kind, truths[best], answer, categories, picked, attributes))
        else:
            queries.append(_Query("auto", photo_kind, truths[0]["product_id"], [], None, None, None, False, None))
        # tapped (peeking for a screenshot's later objects): each true object through the detection overlapping it most
        for j, (truth, tb) in enumerate(zip(truths, true_boxes, strict=True)):
            scores = [iou(b, tb) for b in boxes]
            obj = int(np.argmax(scores))
            follow = answer if obj == picked else client.again(answer["session_id"], obj, k)
            asking = "peeking" if photo_kind == "screenshot" and j > 0 else "tapped"
            queries.append(_score(asking, photo_kind, truth, follow, categories, obj, attributes))
    return queries, latencies


def _summary(qs: list[_Query]) -> dict[str, Any]:
    n = len(qs)
    if not n:
        return {"n": 0}
    top1 = sum(bool(q.ranked) and q.ranked[0] == q.product for q in qs) / n
    top10 = sum(q.product in q.ranked[:10] for q in qs) / n
    shares = [q.category_share for q in qs if q.category_share is not None]
    tagged = [q.tags_precision for q in qs if q.tags_precision is not None]
    exact = [q for q in qs if q.top_match == "exact"]
    by_vector = [q for q in exact if q.top_via == "vector"]
    return {
        "n": n, "top1": round(top1, 4), "top10": round(top10, 4),
        "article_hits": round(sum(q.article_hit for q in qs) / n, 4),
        "top10_without_article_hits": round(sum(q.product in q.ranked[:10] for q in qs if not q.article_hit)
                                            / max(1, sum(not q.article_hit for q in qs)), 4),
        "category_share@10": round(float(np.mean(shares)), 4) if shares else None,
        "tags_precision@5": round(float(np.mean(tagged)), 4) if tagged else None,
        "tags_answered": round(len(tagged) / n, 4),
        # how often search looked within one category (the detected one), and how often it was the right one
        "within_category": round(sum(q.category_right is not None for q in qs) / n, 4),
        "category_right": (round(sum(bool(q.category_right) for q in qs if q.category_right is not None)
                                 / max(1, sum(q.category_right is not None for q in qs)), 4)
                           if any(q.category_right is not None for q in qs) else None),
        "exact": {"labelled": len(exact),
                  "precision": round(sum(q.ranked[0] == q.product for q in exact) / len(exact), 4) if exact else None,
                  "recall": round(sum(q.ranked[0] == q.product for q in exact) / n, 4),
                  "by_vector": {"labelled": len(by_vector), "precision": round(
                      sum(q.ranked[0] == q.product for q in by_vector) / len(by_vector), 4) if by_vector else None}},
    }


ASKING = ("auto", "tapped", "peeking")  # the object the service picked, the ones a shopper taps, those peeking in


def _figures(queries: list[_Query]) -> dict[str, Any]:
    """Photos (one auto query each) and the summary of each way of asking (peeking only where there are any)."""
    out: dict[str, Any] = {"photos": sum(q.kind == "auto" for q in queries)}
    for asking in ASKING:
        chosen = [q for q in queries if q.kind == asking]
        if chosen or asking != "peeking":
            out[asking] = _summary(chosen)
    return out


def evaluate_pipeline(client: PipelineClient, data: Path, *, split: str = "test", limit: int | None = None,
                      progress: bool = True, source: str = "in process", kind: str | None = None) -> dict[str, Any]:
    """Top-1 / top-10 per way of asking, overall and per kind of photo (``by_kind``), article hits apart,
    exact-match precision; ``kind`` restricts the photos to shopper photos or screenshots."""
    queries, latencies = run_queries(client, data, split, limit, progress=progress, kind=kind)
    report: dict[str, Any] = {"data": str(data), "split": split, "source": source, "kind": kind or "all"}
    report.update(_figures(queries))
    report["by_kind"] = {pk: _figures([q for q in queries if q.photo_kind == pk])
                         for pk in sorted({q.photo_kind for q in queries}, key=_kind_order)}
    lat = np.asarray(latencies)
    report["photo_latency_ms"] = {"p50": round(float(np.percentile(lat, 50)), 1), "p95": round(float(np.percentile(lat, 95)), 1)}
    return report


def tags_through_search(client: PipelineClient, data: Path, *, split: str = "test", limit: int | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Precision@5 of the tags search answers with, against the product's attributes: each held-out photo uploaded,
    every true object tapped (the object search picked by itself apart), per kind of photo."""
    queries, _ = run_queries(client, data, split, limit, progress=progress)
    out: dict[str, Any] = {}
    for name, qs in (("all", queries), *((pk, [q for q in queries if q.photo_kind == pk])
                                         for pk in sorted({q.photo_kind for q in queries}, key=_kind_order))):
        out[name] = {}
        for asking in ("tapped", "auto"):
            got = [q.tags_precision for q in qs if q.kind == asking and q.tags_precision is not None]
            n = sum(q.kind == asking for q in qs)
            out[name][asking] = {"precision@5": round(float(np.mean(got)), 4) if got else None,
                                 "answered": round(len(got) / n, 4) if n else None, "n": n}
    out["precision@5"] = out["all"]["tapped"]["precision@5"]
    return out


def refine_through_search(client: PipelineClient, data: Path, *, split: str = "test", limit: int | None = None,
                          k: int = 10, progress: bool = True) -> dict[str, Any]:
    """Held-out triplets the way a shopper refines: upload a photo showing the anchor product, tap it, type the
    text; the target's place among the refined results (searched within the object's detected category)."""
    import pyarrow.parquet as pq

    path = data / "triplets.parquet"
    if not path.is_file():
        raise DatasetError(f"{data}: no triplets.parquet; is it a WB-Synth data set?")
    t = pq.read_table(path).to_pylist()
    triplets = [r for r in t if r["split"] == split]
    photos = held_out_photos(data, split, kind="shopper")
    where: dict[str, tuple[str, tuple[float, float, float, float]]] = {}
    for name in sorted(photos):
        for r in photos[name]:
            where.setdefault(r["product_id"], (name, (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))))
    asked = [r for r in triplets if r["anchor_product_id"] in where][: limit or None]
    if not asked:
        raise DatasetError(f"{data}: no {split}-split triplet whose anchor is in a shopper photo")
    ranks: list[int | None] = []
    plain: list[int | None] = []  # the target's place among the tapped object's own results (no text)
    found_anchor = 0
    for r in track(asked, len(asked), "refining held-out triplets", enabled=progress):
        name, box = where[r["anchor_product_id"]]
        answer = client.photo((data / name).read_bytes(), k)
        overlaps = [iou(tuple(o["box"]), box) for o in answer["objects"]]
        obj = int(np.argmax(overlaps)) if overlaps else 0
        found_anchor += bool(overlaps) and overlaps[obj] >= MIN_IOU
        own = answer if obj == answer["picked"] else client.again(answer["session_id"], obj, k)
        refined = client.refine(answer["session_id"], obj, r["text"], k)
        for out, got in ((ranks, refined), (plain, own)):
            ranked = [x["product_id"] for x in got["results"]]
            out.append(ranked.index(r["target_product_id"]) + 1 if r["target_product_id"] in ranked else None)
    n = len(ranks)

    def figures(rs: list[int | None]) -> dict[str, float]:
        return {"top1": round(sum(x == 1 for x in rs) / n, 4), "top10": round(sum(x is not None and x <= 10 for x in rs) / n, 4)}

    return {**figures(ranks), "image_only": figures(plain), "n_triplets": n, "anchor_detected": round(found_anchor / n, 4),
            "k": k}


def _kind_order(kind: str) -> tuple[int, str]:
    """Shopper photos first, then screenshots, then any kind a newer data set may add."""
    from visearch.synth.dataset import SCENE_KINDS

    return (SCENE_KINDS.index(kind) if kind in SCENE_KINDS else len(SCENE_KINDS), kind)


def calibrate_threshold(queries: list[_Query], target: float) -> dict[str, Any]:
    """The lowest top-1 similarity whose top results are right for at least ``target`` of queries above it."""
    scored = sorted(((q.top_score, q.ranked[0] == q.product) for q in queries if q.top_score is not None),
                    key=lambda x: -x[0])
    if not scored:
        raise VisearchError("no queries to calibrate on")
    best: tuple[float, float, float] | None = None
    correct = 0
    for i, (score, ok) in enumerate(scored, start=1):
        correct += ok
        precision = correct / i
        if precision >= target and (i == len(scored) or scored[i][0] < score):
            best = (score, precision, correct / len(scored))
    if best is None:
        return {"threshold": None, "precision": None, "recall": 0.0, "n": len(scored), "target": target}
    return {"threshold": round(best[0], 5), "precision": round(best[1], 4), "recall": round(best[2], 4),
            "n": len(scored), "target": target}


def calibrate(settings: Settings, data: Path, *, split: str = "val", target: float = 0.95, limit: int | None = None,
              progress: bool = True, save: bool = True) -> dict[str, Any]:
    """Calibrate the exact-match threshold of the configured embedder on ``split`` and keep it with the version."""
    from visearch.registry import ModelStore, pin_model
    from visearch.stages import MATCH_TAG

    client = LocalClient(settings)
    queries, _ = run_queries(client, data, split, limit, progress=progress)
    tapped = [q for q in queries if q.kind == "tapped"]
    result = calibrate_threshold(tapped, target)
    pinned = pin_model(settings.models.embedder, settings)
    result.update({"embedder": pinned.label, "data": str(data), "split": split})
    if save and result["threshold"] is not None and pinned.ref.startswith("models:/"):
        ModelStore(settings).set_tags(pinned.name, pinned.version, {
            MATCH_TAG: str(result["threshold"]), "match_calibration": json.dumps(result, ensure_ascii=False)})
        result["saved"] = f"models:/{pinned.label} tag {MATCH_TAG}"
    return result


