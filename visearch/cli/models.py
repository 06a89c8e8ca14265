"""``visearch models ...``: what is registered, each version's card, aliases, promotion, bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.cli._output import stdout_to_stderr, who
from visearch.config import get_settings
from visearch.registry import CARD_FILE, ModelStore, parse_ref

__all__ = ["models_app"]

models_app = typer.Typer(help="Registered models: list, show, promote, export and import bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")

AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]


@models_app.command("list")
def list_models(as_json: AsJson = False) -> None:
    """Registered models, their versions and aliases."""
    store = ModelStore(get_settings())
    models = store.models()
    if as_json:
        print(json.dumps(models))
        return
    table = Table(title=f"registered models ({store.uri})")
    for col in ("name", "versions", "aliases", "latest"):
        table.add_column(col)
    for m in models:
        latest = str(m["versions"][-1]) if m["versions"] else "-"
        summary = store.client.get_model_version(m["name"], latest).description if m["versions"] else ""
        table.add_row(m["name"], ", ".join(map(str, m["versions"])),
                      ", ".join(f"@{a} → {v}" for a, v in sorted(m["aliases"].items())) or "-",
                      f"v{latest}: {(summary or '')[:70]}")
    Console().print(table if models else "no registered models yet: train one (visearch train ...) or import a bundle "
                    "(visearch models import FILE)")


@models_app.command("show")
def show(ref: Annotated[str, typer.Argument(help="models:/name@alias or models:/name/N")], as_json: AsJson = False) -> None:
    """One version's model card, tags, aliases and the metrics of the run that made it."""
    store = ModelStore(get_settings())
    parsed = parse_ref(ref)
    version = store.version_of(parsed)
    mv = store.client.get_model_version(parsed.name, version)
    folder = store.download(parse_ref(f"models:/{parsed.name}/{version}"))
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8")) if (folder / CARD_FILE).is_file() else {}
    aliases = sorted(a for a, v in (store.client.get_registered_model(parsed.name).aliases or {}).items() if str(v) == version)
    run_metrics = dict(store.client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
    out = {"name": parsed.name, "version": version, "aliases": aliases, "card": card, "tags": dict(mv.tags or {}),
           "run_id": mv.run_id, "run_metrics": run_metrics, "files": sorted(p.name for p in folder.iterdir())}
    if as_json:
        print(json.dumps(out, ensure_ascii=False, default=str))
        return
    console = Console()
    console.print(f"[bold]{parsed.name}[/bold] version {version}" + (f"  aliases: {', '.join('@' + a for a in aliases)}" if aliases else ""))
    console.print(card.get("summary", mv.description or ""))
    for key in ("task", "recipe", "arch", "trained_on", "command", "val_split", "train_seconds", "created"):
        if card.get(key) is not None:
            console.print(f"  {key}: {card[key]}")
    if card.get("data"):
        console.print(f"  data: {card['data']}")
    if card.get("val_metrics"):
        console.print(f"  held-out figures ({card.get('val_split', 'val')}):")
        console.print_json(json.dumps(card["val_metrics"]))
    promoted = {k: v for k, v in (mv.tags or {}).items() if k.startswith("promoted.")}
    if promoted:
        console.print(f"  promotions: {promoted}")
    console.print(f"  files: {', '.join(out['files'])}")


@models_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="registered model name, e.g. visearch-embedder")],
    version: Annotated[int, typer.Argument(min=1, help="version number")],
    alias: Annotated[str, typer.Option("--alias", help="alias to move (serving follows champion)")] = "champion",
    reason: Annotated[str, typer.Option("--reason", help="why, kept in the version's tags")] = "",
    by: Annotated[str | None, typer.Option("--by", help="who (default: the user running this)")] = None,
) -> None:
    """Point an alias at a version; serving replicas follow within their reload interval."""
    actor = who(by)
    previous = ModelStore(get_settings()).promote(name, str(version), alias, actor, reason)
    Console().print(f"{name}@{alias}: {previous or 'unset'} → {version} (by {actor}" + (f": {reason}" if reason else "") + ")")


@models_app.command("export")
def export(
    refs: Annotated[list[str], typer.Argument(help="models:/name@alias or models:/name/N, one or more")],
    out: Annotated[Path, typer.Option("--out", help="bundle file to write (.tar.gz)")],
    label: Annotated[str, typer.Option("--label", help="a name for this bundle, e.g. default-2026.11")] = "",
    note: Annotated[str, typer.Option("--note", help="free text kept in the bundle")] = "",
    cards: Annotated[bool, typer.Option("--cards/--no-cards", help="also write the model cards as Markdown beside it")] = True,
    as_json: AsJson = False,
) -> None:
    """Write registered versions (and the ones their cards name) into one checked bundle, weights in fp16 safetensors."""
    from visearch.bundles import export_bundle

    settings = get_settings()
    err = Console(stderr=True)
    md = out.with_name(out.name.split(".")[0] + ".md") if cards else None
    with stdout_to_stderr(as_json):  # ultralytics prints while the detector is converted
        report = export_bundle(refs, out, settings, label=label, note=note, cards=md,
                               log=None if as_json else (lambda m: err.print(f"[dim]{m}[/dim]")))
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
    for m in report["models"]:
        console.print(f"  {m['name']}/{m['version']}" + (f" (@{', @'.join(m['aliases'])})" if m["aliases"] else "")
                      + f": {m['bytes'] / 2**20:.1f} MiB")
    console.print(f"wrote {report['path']}: {report['bytes'] / 2**20:.1f} MiB, sha256 {report['sha256']}")


@models_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="bundle file (visearch models export)")],
    move_aliases: Annotated[bool, typer.Option("--move-aliases", help="move aliases the registry already has")] = False,
    sha256: Annotated[str | None, typer.Option("--sha256", help="refuse the file unless it has this SHA-256")] = None,
    as_json: AsJson = False,
) -> None:
    """Register a bundle's models under their names and aliases; a bad bundle changes nothing."""
    from visearch.bundles import import_bundle

    err = Console(stderr=True)
    with stdout_to_stderr(as_json):
        report = import_bundle(path, get_settings(), move_aliases=move_aliases, expect_sha256=sha256,
                               log=None if as_json else (lambda m: err.print(f"[dim]{m}[/dim]")))
    if as_json:
        print(json.dumps(report.as_dict()))
        return
    console = Console()
    for name, version in report.registered.items():
        console.print(f"  registered {name} version {version}")
    for name, version in report.reused.items():
        console.print(f"  {name}: identical to version {version}, reused")
    if report.aliases_set:
        console.print(f"  aliases set: {', '.join(report.aliases_set)}")
    if report.aliases_kept:
        console.print(f"  aliases left where they were (use --move-aliases to move): {', '.join(report.aliases_kept)}")
