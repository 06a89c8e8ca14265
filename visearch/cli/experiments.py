"""``visearch experiments ...`` and ``visearch keys ...``: what experiment owners do, from a terminal.

The same :class:`~visearch.ab.admin.ExperimentAdmin` as the HTTP admin API, on the local store;
a running service picks changes up by itself (``serving.reload_interval_s``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.cli._output import who
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError
from visearch.experiments import Experiment, Variant

__all__ = ["experiments_app", "keys_app", "parse_arm"]

experiments_app = typer.Typer(help="A/B experiments: list, show, set, stop, report, conclude.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the admin endpoints: create, list, revoke.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(keys_app, name="keys")

AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]
Name = Annotated[str, typer.Argument(help="experiment name")]


def _admin():  # noqa: ANN202 - imported lazily: the CLI starts fast
    from visearch.ab.admin import ExperimentAdmin

    return ExperimentAdmin(get_settings())


def parse_arm(text: str) -> Variant:
    """``NAME:WEIGHT[:DIM[:EMBEDDER]]``, e.g. ``treatment:50:256:models:/visearch-embedder/3`` (the embedder
    defaults to the variant's own default, the champion)."""
    parts = text.split(":", 3)
    if len(parts) < 2 or not parts[1].isdigit():
        raise InvalidArgumentError(f"--arm {text!r}: expected NAME:WEIGHT[:DIM[:EMBEDDER]], e.g. control:50:128")
    fields: dict[str, object] = {"name": parts[0], "weight": int(parts[1])}
    if len(parts) > 2 and parts[2]:
        if not parts[2].isdigit():
            raise InvalidArgumentError(f"--arm {text!r}: DIM must be 128 or 256, got {parts[2]!r}")
        fields["online_dim"] = int(parts[2])
    if len(parts) > 3 and parts[3]:
        fields["embedder"] = parts[3]
    try:
        return Variant.model_validate(fields)
    except ValueError as e:
        raise InvalidArgumentError(f"--arm {text!r}: {str(e).splitlines()[-1].strip()}") from None


def _print(obj: object, as_json: bool) -> None:
    text = json.dumps(obj, indent=None if as_json else 2, ensure_ascii=False, default=str)
    print(text) if as_json else Console().print_json(text)


@experiments_app.command("list")
def list_cmd(as_json: AsJson = False) -> None:
    """Every experiment: its latest version, weights, and which one the service routes by."""
    rows = _admin().list()
    if as_json:
        _print(rows, True)
        return
    if not rows:
        Console().print("no experiments yet: visearch experiments set NAME --arm control:50 --arm treatment:50:256")
        return
    table = Table(title="experiments")
    for col in ("name", "version", "serving", "state", "weights"):
        table.add_column(col)
    for r in rows:
        state = "concluded" if r["concluded"] else ("running" if r["active"] else "stopped")
        table.add_row(r["name"], str(r["version"]), "yes" if r["serving"] else "", state,
                      ", ".join(f"{k}={v}" for k, v in r["variants"].items()))
    Console().print(table)


@experiments_app.command("show")
def show_cmd(name: Name, version: Annotated[int | None, typer.Option("--version", min=1)] = None,
             as_json: AsJson = False) -> None:
    """One version of an experiment (default the latest)."""
    _print(_admin().get(name, version).model_dump(mode="json"), as_json)


@experiments_app.command("set")
def set_cmd(
    name: Name,
    arm: Annotated[list[str] | None, typer.Option("--arm", help="NAME:WEIGHT[:DIM[:EMBEDDER]], once per variant")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="JSON with 'variants' (and optionally 'salt') instead")] = None,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="route the service by it")] = True,
    as_json: AsJson = False,
) -> None:
    """Store a new version of an experiment; users of arms that keep or grow their weight stay where they are."""
    if bool(arm) == bool(file):
        raise InvalidArgumentError("give the variants either as --arm NAME:WEIGHT[:DIM[:EMBEDDER]] options or as --file")
    if file is not None:
        try:
            spec = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidArgumentError(f"--file {file}: {e}") from None
        experiment = Experiment.model_validate({**spec, "name": name})
    else:
        experiment = Experiment(name=name, variants=[parse_arm(a) for a in arm or []])
    stored = _admin().set(experiment, serve=serve)
    _print({"name": stored.name, "version": stored.version, "serving": serve,
            "variants": {v.name: v.weight for v in stored.variants}}, as_json)


@experiments_app.command("stop")
def stop_cmd(name: Name, reason: Annotated[str, typer.Option("--reason", help="why, for the record")],
             as_json: AsJson = False) -> None:
    """Route everyone to control from now on."""
    stopped = _admin().stop(name, f"{reason} ({who()})")
    _print({"name": stopped.name, "version": stopped.version, "active": stopped.active}, as_json)


@experiments_app.command("report")
def report_cmd(name: Name, out: Annotated[Path | None, typer.Option("--out", help="folder for the JSON and PNG")] = None,
               log: Annotated[bool, typer.Option("--log/--no-log", help="log the report to MLflow as a run")] = True,
               as_json: AsJson = False) -> None:
    """Per variant: users, impressions, CTR, add-to-cart and order rates, revenue per user, each with a 95%
    interval, the difference to control (fixed-horizon and always-valid), and the sample-ratio check."""
    report = _admin().report(name, out_dir=out, log_mlflow=log)
    if as_json:
        _print(report, True)
        return
    console = Console()
    table = Table(title=f"{report['experiment']} v{report['version']}: {report['users']:,} users "
                        f"({report['mixed_users']} seen in two arms, left out)")
    table.add_column("metric")
    for v in report["variants"]:
        table.add_column(v + (" (control)" if v == report["control"] else ""))
    table.add_row("users", *(f"{row['users']:,}" for row in report["variants"].values()))
    for metric in ("ctr", "add_to_cart_rate", "order_rate", "revenue_per_user"):
        cells = []
        for row in report["variants"].values():
            m = row[metric]
            cell = f"{m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]"
            if "vs_control" in m:
                d = m["vs_control"]
                rel = f"{d['relative']:+.1%}" if d["relative"] is not None else f"{d['difference']:+.4g}"
                cell += f"\n{rel}, p={d['p_value']:.3g}{' ✓' if d['significant'] else ''}"
            cells.append(cell)
        table.add_row(metric, *cells)
    console.print(table)
    srm = report["srm"]
    console.print(f"sample ratio: p={srm['p_value']:.3g} " + ("[red]MISMATCH: the split is broken, trust no figure[/red]"
                                                             if srm["mismatch"] else "(ok)"))
    console.print("✓: the always-valid interval excludes 0 (safe to act on at any look)")
    console.print(f"report: {report['files']['json']} and {report['files']['png']}")


@experiments_app.command("conclude")
def conclude_cmd(
    name: Name,
    winner: Annotated[str | None, typer.Option("--winner", help="the arm to keep (default: the report's)")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="move @champion to the winner's embedder version")] = False,
    reason: Annotated[str, typer.Option("--reason", help="why, for the record")] = "",
    as_json: AsJson = False,
) -> None:
    """End an experiment on its report (everyone back to control), optionally promoting the winner's model."""
    _print(_admin().conclude(name, winner=winner, promote=promote, by=who(), reason=reason), as_json)


@keys_app.command("create")
def keys_create(role: Annotated[list[str], typer.Option("--role", help="admin (change) or viewer (read); repeatable")],
                note: Annotated[str, typer.Option("--note", help="whose key, for the listing")] = "") -> None:
    """A new API key, printed once (only its hash is kept)."""
    from visearch.api_keys import ApiKeys

    settings = get_settings()
    assert settings.experiments.api_keys_path is not None
    print(ApiKeys(settings.experiments.api_keys_path).create(role, note))


@keys_app.command("list")
def keys_list(as_json: AsJson = False) -> None:
    """Issued keys: id, roles, note (never the key)."""
    from visearch.api_keys import ApiKeys

    settings = get_settings()
    assert settings.experiments.api_keys_path is not None
    _print(ApiKeys(settings.experiments.api_keys_path).list(), as_json)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (visearch keys list)")]) -> None:
    """Revoke a key: requests with it get 403 from now on."""
    from visearch.api_keys import ApiKeys

    settings = get_settings()
    assert settings.experiments.api_keys_path is not None
    ApiKeys(settings.experiments.api_keys_path).revoke(key_id)
    print(f"revoked {key_id}")
