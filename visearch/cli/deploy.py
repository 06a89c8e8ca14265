"""``visearch deploy rayservice``: the KubeRay manifest generated from a Serve config (serve_app/rayservice.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from visearch import __version__
from visearch.cli import app
from visearch.cli.serve import read_serve_config
from visearch.errors import VisearchError

deploy_app = typer.Typer(help="Manifests for running the service on a cluster.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("rayservice")
def rayservice_command(
    config: Annotated[Path, typer.Option("--config", help="the Serve config it serves")] = Path("deployments/gpu.yaml"),
    out: Annotated[Path | None, typer.Option("--out", help="write here (default: stdout)")] = None,
    image: Annotated[str, typer.Option(help="container image with this package installed")] = f"visearch:{__version__}",
    name: Annotated[str, typer.Option(help="the RayService's name")] = "visearch",
    check: Annotated[bool, typer.Option("--check", help="fail if --out differs from what would be written")] = False,
) -> None:
    """Write the RayService (head, CPU and GPU worker groups sized from the config's replica bounds) whose
    serveConfigV2 is the Serve config itself."""
    from serve_app.rayservice import rayservice, render
    from visearch.config import get_settings

    serve_config = read_serve_config(config)
    settings = get_settings(**(serve_config["applications"][0].get("args") or {}))
    text = render(rayservice(serve_config, settings, image=image, name=name), config.name)
    if out is None:
        sys.stdout.write(text)
    elif check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            raise VisearchError(f"{out} is not what {config} generates; run: visearch deploy rayservice --config "
                                f"{config} --out {out}")
        print(f"{out} agrees with {config}")
    else:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out} from {config}")
