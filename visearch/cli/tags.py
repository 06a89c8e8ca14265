"""``visearch tags generate``: the catalog's tags, generated and cleaned, with the cleaning's report.

Which generator: ``--generator`` or ``VISEARCH_TAGS__GENERATOR`` (``extractor``, offline,
the default; ``llm`` / ``vlm`` through ``VISEARCH_TAGS__ENDPOINT_URL``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from visearch.catalog import catalog_path
from visearch.cli import app
from visearch.cli._output import stdout_to_stderr
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError
from visearch.files import write_text_atomic
from visearch.tags.catalog import tag_catalog, write_tags
from visearch.tags.clean import attribute_recovery
from visearch.tags.vocabulary import ATTRIBUTE_FACETS

__all__ = ["tags_app"]

tags_app = typer.Typer(help="Product tags: generate them from cards or photos, cleaned to one vocabulary.",
                       no_args_is_help=True)
app.add_typer(tags_app, name="tags")


@tags_app.command("generate")
def generate_cmd(
    data: Annotated[Path, typer.Option("--data", help="data set folder with products.parquet")],
    generator: Annotated[Literal["extractor", "llm", "vlm"] | None, typer.Option(
        "--generator", help="tag source (default: VISEARCH_TAGS__GENERATOR, extractor)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help=(
        "tags Parquet to write (default: DATA/tags.parquet); its vocabulary and cleaning report go beside it "
        "as <name>-vocabulary.json and <name>-cleaning.json"))] = None,
    vocabulary: Annotated[Path | None, typer.Option("--vocabulary", help=(
        "use this saved vocabulary instead of learning one from the catalog (e.g. train's, to tag another set)"))]
    = None,
    no_attributes: Annotated[bool, typer.Option("--no-attributes", help=(
        "give the generator only titles and descriptions (photos for vlm), not the attribute columns: "
        "measures how much of the attributes text alone recovers"))] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Generate raw tags for every product, clean them, and write tags, vocabulary and report."""
    settings = get_settings()
    start = time.perf_counter()
    source = catalog_path(data)
    root = source.parent
    out = out or root / "tags.parquet"
    if out.suffix != ".parquet":
        raise InvalidArgumentError(f"--out {out}: the tags file is Parquet; give a name ending in .parquet")
    vocab_path = out.with_name(f"{out.stem}-vocabulary.json")
    report_path = out.with_name(f"{out.stem}-cleaning.json")

    with stdout_to_stderr(as_json):
        tagged = tag_catalog(data, settings, generator=generator, vocabulary=vocabulary, attributes=not no_attributes,
                             progress=not (quiet or as_json))
        rows, gen, vocab, tags, report = tagged.rows, tagged.generator, tagged.vocabulary, tagged.tags, tagged.report
        n_rows = write_tags(out, tagged.product_ids, tags)
        if not vocabulary:
            vocab.save(vocab_path)
    facets = [f for f in ATTRIBUTE_FACETS if any(r.get(f) not in (None, "") for r in rows)]
    stats = getattr(gen, "stats", None)
    result: dict[str, Any] = {
        "data": str(root),
        "generator": {"name": gen.name, "attributes": not no_attributes,
                      **({"endpoint": stats.to_dict()} if stats is not None else {})},
        "vocabulary": {"path": str(vocabulary or vocab_path), "learned": vocabulary is None, "tags": len(vocab),
                       "aliases": len(vocab.aliases)},
        "cleaning": report.to_dict(),
        "recovery": attribute_recovery(rows, tags, facets) if facets else {},
        "files": {"tags": str(out), "rows": n_rows, "vocabulary": str(vocabulary or vocab_path),
                  "report": str(report_path)},
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_text_atomic(report_path, json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    console = Console()
    console.print(f"[bold]tags[/bold] of {root} by {gen.name}"
                  f"{' (titles and descriptions only)' if no_attributes else ''}, {result['seconds']:.1f} s")
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
    if stats is not None:
        console.print(f"endpoint: {stats.requests:,} requests, {stats.cached:,} products from the cache, "
                      f"{stats.retries:,} retries, {len(stats.failed):,} products without an answer")
    if result["recovery"]:
        table = Table(title="attribute values found among the tags (share of products)")
        for f in (*facets, "all"):
            table.add_column(f, justify="right")
        table.add_row(*(f"{result['recovery'][f]:.3f}" for f in (*facets, "all")))
        console.print(table)
    written = [f"{out} ({n_rows:,} rows)", str(report_path), *([] if vocabulary else [str(vocab_path)])]
    console.print("wrote " + ", ".join(written), soft_wrap=True, highlight=False)
