"""``visearch eval pipeline`` and ``visearch calibrate``: the whole query on held-out photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.cli._output import stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.config import get_settings
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.pipeline_eval import ASKING

Data = Annotated[Path, typer.Option("--data", help="WB-Synth data set folder whose held-out photos are searched")]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="at most this many photos")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]


def _check(data: Path, kind: str | None = None) -> None:
    """Fail before any model loads: no data set, or a kind of photo it cannot have."""
    from visearch.synth.dataset import SCENE_KINDS

    if not (data / "scenes.parquet").is_file():
        raise DatasetError(f"{data}: no scenes.parquet; is it a WB-Synth data set? (visearch synth --out {data})")
    if kind is not None and kind not in SCENE_KINDS:
        raise InvalidArgumentError(f"--kind must be one of {', '.join(SCENE_KINDS)}, got {kind!r}")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _table(title: str, figures: dict[str, Any]) -> Table:
    """One kind of photo (or all): a row per figure, a column per way of asking."""
    table = Table(title=f"{title}: {figures['photos']:,} photos")
    table.add_column("")
    asked = [a for a in ASKING if a in figures]
    for asking in asked:
        table.add_column(asking, justify="right")
    rows = (
        ("queries", lambda s: f"{s['n']:,}"),
        ("top-1", lambda s: _pct(s.get("top1"))),
        ("top-10", lambda s: _pct(s.get("top10"))),
        ("article hits", lambda s: _pct(s.get("article_hits"))),
        ("top-10 without article hits", lambda s: _pct(s.get("top10_without_article_hits"))),
        ("same category in top-10", lambda s: _pct(s.get("category_share@10"))),
        ("searched within one category", lambda s: _pct(s.get("within_category"))),
        ("  that category right", lambda s: _pct(s.get("category_right"))),
        ("exact-match precision", lambda s: _pct(s.get("exact", {}).get("precision"))),
    )
    for name, cell in rows:
        table.add_row(name, *(cell(figures[asking]) if figures[asking].get("n") else "-" for asking in asked))
    return table


def _print_tables(report: dict[str, Any], path: Path) -> None:
    console = Console()
    console.print(f"WB-Synth {report['data']}, {report['split']} split, searched {report['source']}")
    console.print(_table("all kinds" if report["kind"] == "all" else report["kind"], report))
    if report["kind"] == "all":
        for kind, figures in report["by_kind"].items():
            console.print(_table(kind, figures))
    lat = report["photo_latency_ms"]
    console.print(f"photo latency p50 {lat['p50']} ms, p95 {lat['p95']} ms; report: {path}")


@eval_app.command("pipeline")
def eval_pipeline_cmd(
    data: Data,
    url: Annotated[str | None, typer.Option("--url", help="measure the running service at this URL instead of in process")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
    limit: Limit = None,
    kind: Annotated[str | None, typer.Option("--kind", help="only shopper photos or only screenshot-style queries "
                                             "(shopper|screenshot; default both, each reported apart too)")] = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Top-1 / top-10 of held-out photos through the whole query (auto-picked and tapped object), article
    hits apart, share of results in the query's category, exact-match precision, photo latency; overall
    and per kind of photo (shopper photos, screenshots)."""
    from visearch.pipeline_eval import HttpClient, LocalClient, evaluate_pipeline

    _check(data, kind)
    settings = get_settings()
    with stdout_to_stderr(as_json):
        client = HttpClient(url) if url else LocalClient(settings)
        report = evaluate_pipeline(client, data, split=split, limit=limit, progress=not quiet,
                                   source=url or "in process", kind=kind)
    path = settings.data_dir / "reports" / "eval-pipeline.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    _print_tables(report, path)


@app.command("calibrate")
def calibrate_cmd(
    data: Data,
    split: Annotated[str, typer.Option("--split", help="held-out split to calibrate on (not the one you report)")] = "val",
    target: Annotated[float, typer.Option("--target", min=0.5, max=1.0, help="precision the exact label must reach")] = 0.95,
    limit: Limit = None,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="do nothing when the embedder's version is calibrated already")] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Calibrate the configured models on held-out photos and keep the results with their registered versions:
    when a result is taken for the very product photographed ("match": "exact", on the embedder) and how
    much the detector's category counts against the crop classifier's (on the classifier)."""
    from visearch.pipeline_eval import calibrate
    from visearch.registry import ModelStore, pin_model
    from visearch.stages import match_threshold_of
    from visearch.vision.classifier import FUSION_TAG, classifier_ref
    from visearch.vision.evaluate import calibrate_fusion

    _check(data)
    settings = get_settings()
    classifier = classifier_ref(settings)
    say = Console(stderr=as_json)
    result: dict[str, Any] = {}
    pinned = pin_model(settings.models.embedder, settings)
    threshold = match_threshold_of(pinned, settings)
    with stdout_to_stderr(as_json):
        if if_missing and threshold is not None:
            say.print(f"{pinned.label} is calibrated already (exact from {threshold}): keeping it")
        else:
            result = calibrate(settings, data, split=split, target=target, limit=limit, progress=not quiet)
        if classifier is not None:
            pinned_cls = pin_model(classifier, settings)
            kept = ModelStore(settings).tags(pinned_cls.name, pinned_cls.version).get(FUSION_TAG) if pinned_cls.ref.startswith("models:/") else None
            if if_missing and kept is not None:
                say.print(f"{pinned_cls.label} is calibrated already (detector weight {kept}): keeping it")
            else:
                result["categories"] = calibrate_fusion(data, settings, split=split, limit=limit, progress=not quiet)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    if result:
        Console().print_json(json.dumps(result, ensure_ascii=False))
