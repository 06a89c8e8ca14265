"""``visearch simulate``: simulated shoppers drive the running service over HTTP and send their events back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli import app
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError


@app.command("simulate")
def simulate_cmd(
    data: Annotated[Path, typer.Option("--data", help="WB-Synth data set the service's catalog comes from")],
    users: Annotated[int, typer.Option("--users", min=1, help="simulated shoppers")] = 200,
    url: Annotated[str, typer.Option("--url", help="the running service")] = "http://127.0.0.1:8000",
    searches: Annotated[int, typer.Option("--searches", min=1, help="photos each shopper sends")] = 2,
    experiment: Annotated[str | None, typer.Option("--experiment", help="stop unless the service routes by it")] = None,
    split: Annotated[str, typer.Option("--split", help="whose photos are sent")] = "test",
    seed: Annotated[int, typer.Option("--seed", min=0, help="shoppers' ids and choices (another seed: other shoppers)")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="shoppers at once")] = 4,
    wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for a service that is still starting")] = 0,
    until: Annotated[str | None, typer.Option("--until-significant", help=(
        "with --experiment: shoppers in rounds of --step until the report's always-valid difference on this metric "
        "(ctr, add_to_cart_rate, order_rate, revenue_per_user) excludes zero, --users at most"))] = None,
    step: Annotated[int, typer.Option("--step", min=1, help="shoppers per round with --until-significant")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Shoppers who click, cart and order by how relevant the results truly are (WB-Synth ground truth),
    their price, rating and position; the service attributes their events to the variants that served them."""
    from visearch.simulate import simulate, simulate_until

    if until is not None:
        if experiment is None:
            raise InvalidArgumentError("--until-significant needs --experiment NAME (whose report is read)")
        result = simulate_until(url, data, experiment, get_settings(), metric=until, step=step, max_users=users, seed=seed,
                                searches=searches, split=split, workers=workers, progress=not (quiet or as_json), wait_s=wait)
    else:
        result = simulate(url, data, users, searches=searches, split=split, seed=seed, workers=workers,
                          experiment=experiment, progress=not (quiet or as_json), wait_s=wait)
    if as_json:
        print(json.dumps(result))
        return
    Console().print_json(json.dumps(result))
    if experiment:
        Console().print(f"now: visearch experiments report {experiment}")
