"""``visearch eval curve``: top-10 of the held-out photos as the catalog grows (distractors from another set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from visearch.cli._output import stdout_to_stderr
from visearch.cli.eval import eval_app
from visearch.config import get_settings

_SIZES_HELP = "catalog sizes, comma-separated; those larger than both sets hold are skipped with a warning"


def _cell(block: dict[str, Any] | None, key: str) -> str:
    value = (block or {}).get(key)
    return "-" if value is None else f"{value:.3f}"


def _per_kind(entry: dict[str, Any]) -> dict[str, float]:
    """Tapped top-10 per query kind, when the pipeline evaluation measured kinds."""
    from visearch.catalog_curve import top10_leaves

    return {label: y for label, y in top10_leaves(entry.get("by_kind")) if label.endswith("tapped")}


def _table(report: dict[str, Any]) -> Table:
    table = Table(title=f"top-k against catalog size: {report['split']} photos of {Path(report['data']).name}, "
                        f"distractors from {Path(report['distractors']).name}")
    kinds = list(dict.fromkeys(label for e in report["sizes"] for label in _per_kind(e)))
    for col in ("products", "distractors", "auto top-1", "auto top-10", "tapped top-1", "tapped top-10",
                "category share@10", *(f"{k} top-10" for k in kinds)):
        table.add_column(col, justify="right")
    for e in report["sizes"]:
        mine = _per_kind(e)
        table.add_row(f"{e['n_products']:,}", f"{e['from_distractors']:,}", _cell(e["auto"], "top1"),
                      _cell(e["auto"], "top10"), _cell(e["tapped"], "top1"), _cell(e["tapped"], "top10"),
                      _cell(e["tapped"], "category_share@10"), *(_cell(mine, k) for k in kinds))
    return table


@eval_app.command("curve")
def eval_curve_cmd(
    data: Annotated[Path, typer.Option("--data", help="WB-Synth data set whose held-out photos are searched")],
    distractors: Annotated[Path, typer.Option("--distractors", help="another WB-Synth set (another seed): its products "
                                              "fill the larger catalogs")],
    sizes: Annotated[str, typer.Option("--sizes", help=_SIZES_HELP)] = "1000,2000,5000,20000",
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="at most this many photos")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="folder of curve.json, curve.png and the vector cache "
                                             "\\[default: <data_dir>/reports/curve]")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="the draw of filler products")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Top-1 / top-10 of held-out photos through the whole query, against catalogs of growing size (each in a
    temporary index: the serving one is not touched)."""
    from visearch.catalog_curve import catalog_curve, parse_sizes

    wanted = parse_sizes(sizes)
    settings = get_settings()
    err = Console(stderr=True)

    def say(msg: str) -> None:
        err.print(Text(msg, style="yellow" if msg.startswith("warning") else "dim"))

    with stdout_to_stderr(as_json):
        report = catalog_curve(data, distractors, settings, sizes=wanted, split=split, limit=limit, out=out, seed=seed,
                               progress=not quiet, say=say)
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    console = Console()
    console.print(_table(report))
    for s in report["skipped"]:
        console.print(f"skipped {s['size']:,}: {s['reason']}")
    console.print(f"report: {report['json']} and {report['png']}")
