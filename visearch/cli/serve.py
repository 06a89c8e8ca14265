"""``visearch serve``: the Ray Serve application on this machine, until Ctrl-C.

With ``--config`` the YAML (the same file ``serve run`` takes) gives the HTTP options and
the builder's settings overrides; without it the settings alone decide. ``--try PHOTO``
sends one photo through the HTTP API once the service is ready and prints what it found
(``make demo`` does this); ``--exit`` returns after that answer.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError, VisearchError

console = Console(stderr=True)


def read_serve_config(path: Path) -> dict[str, Any]:
    """A Serve config file holding this project's one application, as written."""
    import yaml

    if not path.is_file():
        raise InvalidArgumentError(f"{path}: no such Serve config file")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InvalidArgumentError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    apps = config.get("applications") or []
    if len(apps) != 1 or apps[0].get("import_path") != "serve_app.app:build_app":
        raise InvalidArgumentError(f"{path}: expected one application with import_path serve_app.app:build_app")
    return config


def _read_config(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(http_options, args) of the single application in a Serve config file."""
    config = read_serve_config(path)
    return dict(config.get("http_options") or {}), dict(config["applications"][0].get("args") or {})


def wait_ready(url: str, timeout_s: float) -> dict[str, Any]:
    import httpx

    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/readyz", timeout=5)
            if r.status_code == 200:
                return r.json()
            last = r.json().get("reason", r.text)
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.5)
    raise VisearchError(f"the service at {url} did not become ready in {timeout_s:.0f}s: {last}")


def try_photo(url: str, photo: Path, top: int = 5) -> dict[str, Any]:
    """One photo through ``POST /v1/photo``, printed as the app would show it."""
    import httpx

    r = httpx.post(f"{url}/v1/photo", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                   data={"top_k": str(top)}, headers={"X-User-Id": "demo"}, timeout=60)
    body = r.json()
    if r.status_code != 200:
        raise VisearchError(f"{photo}: {r.status_code} {body.get('error', body)}")
    out = Console()
    objects = ", ".join(f"{o['id']}: {o['category']} {o['score']:.2f}" for o in body["objects"])
    out.print(f"[bold]{photo}[/bold] → objects: {objects}; searched object {body['picked']} "
              f"(variant {body['variant']}, index {body['index_version']}, models {body['models']})")
    for a in body["article_hits"]:
        out.print(f"  article {a['article']} → product {a['product_id']} (printed on object {a['object_id']})")
    table = Table(show_header=True)
    for col in ("#", "product", "match", "score", "price", "title"):
        table.add_column(col)
    for n, x in enumerate(body["results"], 1):
        table.add_row(str(n), x["product_id"], x["match"], f"{x['score']:.3f}",
                      "" if x["price"] is None else f"{x['price']:g}", str(x["title"] or "")[:60])
    out.print(table)
    if body.get("tags"):
        out.print("  tags: " + ", ".join(f"{t['text']} ({t['facet']}, {t['score']:.2f})" for t in body["tags"]))
    elif body.get("tags_note"):
        out.print(f"  {body['tags_note']}")
    out.print("  " + ", ".join(f"{k} {v:.0f} ms" for k, v in body["timings_ms"].items()))
    return body


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", help="Serve config YAML (deployments/local.yaml, gpu.yaml)")] = None,
    host: Annotated[str | None, typer.Option(help="bind address [default: the config's, else VISEARCH_SERVING__HOST]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="HTTP port [default: the config's, else VISEARCH_SERVING__PORT]")] = None,
    try_: Annotated[Path | None, typer.Option("--try", help="send this photo through the API once ready and print the results")] = None,
    exit_: Annotated[bool, typer.Option("--exit", help="stop after the --try answer instead of serving until Ctrl-C")] = False,
    ready_timeout: Annotated[float, typer.Option(min=1, help="seconds to wait for every deployment to load")] = 600,
) -> None:
    """Start the search service (Ray Serve, HTTP API v1, web page at /) and serve until Ctrl-C."""
    if try_ is not None and not try_.is_file():
        raise InvalidArgumentError(f"{try_}: no such photo")
    http, args = _read_config(config) if config else ({}, {})
    settings = get_settings()
    host = host or http.get("host") or settings.serving.host
    port = port or http.get("port") or settings.serving.port
    args.setdefault("serving", {}).update({"host": host, "port": port})

    import ray
    from ray import serve as ray_serve

    from serve_app.app import app_settings, build_app
    from visearch.bundles import ensure_default_models

    # a fresh clone serves the shipped default models: imported once, never over models registered here
    ensure_default_models(app_settings(args), log=lambda m: console.print(f"[dim]{m}[/dim]"))

    def stop(signum: int, _frame: object) -> None:  # a supervisor's TERM ends like Ctrl-C: Serve shut down cleanly
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(f"starting Ray Serve on {host}:{port} ...")
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        ray_serve.start(http_options={"host": host, "port": port})
        ray_serve.run(build_app(args), name=settings.serving.app_name, route_prefix="/", blocking=False)
        ready = wait_ready(url, ready_timeout)
        console.print(f"ready: {json.dumps({k: v for k, v in ready.items() if k != 'status'}, ensure_ascii=False)}")
        if try_ is not None:
            try_photo(url, try_)
        console.print(f"[bold green]visearch is serving[/bold green]: page {url}/  ·  API docs {url}/docs  ·  Ctrl-C stops")
        if exit_:
            return
        while True:
            time.sleep(3600)
    finally:
        ray_serve.shutdown()
        ray.shutdown()
