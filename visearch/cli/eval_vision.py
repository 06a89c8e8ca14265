"""``visearch eval detector|ocr``: perception measured on a WB-Synth held-out split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli._output import stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.config import get_settings

Data = Annotated[Path, typer.Option("--data", help="WB-Synth data set folder (any seed, not only the trained one)")]
Model = Annotated[str | None, typer.Option("--model", help="detector reference [default: VISEARCH_MODELS__DETECTOR]")]
Split = Annotated[str, typer.Option("--split", help="train, val or test (held-out products)")]
Report = Annotated[Path | None, typer.Option("--report", help="JSON report path; the PNG sheet goes beside it")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _finish(report: dict, sheet, path: Path, as_json: bool) -> None:
    from visearch.vision.evaluate import write_report

    write_report(report, path, sheet)
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    console = Console()
    console.print_json(json.dumps(report, ensure_ascii=False))
    console.print(f"report: {path} and {path.with_suffix('.png')}")


@eval_app.command("detector")
def eval_detector_cmd(
    data: Data,
    model: Model = None,
    split: Split = "test",
    classifier: Annotated[str | None, typer.Option(
        "--classifier", help="crop classifier fused in for mAP50 by category as search names categories "
        "(default: the configured one when registered; 'off': none)")] = None,
    report: Report = None,
    as_json: AsJson = False,
) -> None:
    """Box mAP (boxes alone and by category), precision and recall, with a sheet of predictions."""
    from visearch.vision.classifier import classifier_ref
    from visearch.vision.evaluate import eval_detector

    settings = get_settings()
    fused = None if classifier == "off" else classifier or classifier_ref(settings)
    with stdout_to_stderr(as_json):
        result, sheet = eval_detector(data, settings, ref=model, split=split, classifier=fused)
    _finish(result, sheet, report or settings.data_dir / "reports" / "eval-detector.json", as_json)


@eval_app.command("ocr")
def eval_ocr_cmd(
    data: Data,
    model: Model = None,
    split: Split = "test",
    boxes: Annotated[str, typer.Option("--boxes", help="link articles to detector boxes or to ground-truth boxes")] = "detector",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="at most this many photos")] = None,
    report: Report = None,
    as_json: AsJson = False,
) -> None:
    """Article recall and precision per photo, recall per object, with a sheet of what was read."""
    from visearch.vision.evaluate import eval_ocr

    settings = get_settings()
    with stdout_to_stderr(as_json):
        result, sheet = eval_ocr(data, settings, split=split, boxes=boxes, ref=model, limit=limit)
    _finish(result, sheet, report or settings.data_dir / "reports" / "eval-ocr.json", as_json)
