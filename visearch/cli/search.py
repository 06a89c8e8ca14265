"""``visearch search PHOTO...``: the whole query in process, as the app will see it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.cli._output import stdout_to_stderr
from visearch.config import get_settings


@app.command()
def search(
    photos: Annotated[list[Path], typer.Argument(help="shopper photos (JPEG, PNG, WebP, GIF, BMP, TIFF)")],
    top: Annotated[int | None, typer.Option("--top", "-k", min=1, max=200, help="products to return [default: VISEARCH_SERVING__TOP_K]")] = None,
    pick: Annotated[int | None, typer.Option("--object", min=0, help="search this detected object instead of the most confident")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object per photo, one per line")] = False,
) -> None:
    """Detect objects, read articles, embed the picked object and find matching products."""
    from visearch.pipeline import SearchPipeline, answer_to_dict

    settings = get_settings()
    console = Console()
    with stdout_to_stderr(as_json):
        pipeline = SearchPipeline.from_settings(settings)
        results = [(p, pipeline.search(p, k=top, pick=pick)) for p in photos]
    for photo, result in results:
        if as_json:
            print(json.dumps({"photo": str(photo), **answer_to_dict(result)}, ensure_ascii=False))
            continue
        objects = ", ".join(f"{o.id}: {o.category} {o.score:.2f}" for o in result.objects)
        console.print(f"[bold]{photo}[/bold]: objects: {objects}; searched object {result.picked}")
        for a in result.article_hits:
            console.print(f"  article {a.article} → product {a.product_id} (direct hit, object {a.object_id})")
        table = Table(show_header=True)
        for col in ("#", "product", "match", "score", "category", "price", "title"):
            table.add_column(col)
        for n, r in enumerate(result.results, start=1):
            table.add_row(str(n), r.product_id, r.match, f"{r.score:.3f}", str(r.category or ""),
                          "" if r.price is None else f"{r.price:g}", str(r.title or "")[:60])
        console.print(table)
        if result.tags:
            console.print("  tags: " + ", ".join(f"{t.text} ({t.facet}, {t.score:.2f})" for t in result.tags))
        elif result.tags_note:
            console.print(f"  {result.tags_note}")
        console.print("  " + ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items()))
