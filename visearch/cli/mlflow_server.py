"""``visearch mlflow serve|uri``: the MLflow tracking server over the project's own store.

``serve`` runs the installed MLflow's ``mlflow server`` (a child process) on the store every
job writes: the backend store is the configured tracking URI (``sqlite:///<data_dir>/mlflow.db``
by default) and artifacts are proxied (``--serve-artifacts``) to ``<data_dir>/mlartifacts``.
Experiments the jobs created keep their ``file://`` artifact locations under that folder and
the server reads them in place; experiments created through the server (the UI, a remote
client) get ``mlflow-artifacts:/`` locations that land in the same folder. The UI has no
authentication, so the default bind is loopback; docs/mlflow.md and mlflow/README.md say more.

``uri`` prints the tracking URI clients should use to reach it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlparse

import typer
from rich.console import Console

from visearch.cli import app
from visearch.config import Settings, get_settings
from visearch.errors import InvalidArgumentError, VisearchError

__all__ = ["mlflow_app", "server_command", "local_store"]

console = Console(stderr=True)

mlflow_app = typer.Typer(
    help="The MLflow tracking server (UI, REST API, model registry) over the project's store.",
    no_args_is_help=True,
)
app.add_typer(mlflow_app, name="mlflow")

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SERVER_ENV = {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_READ_REPLICA_BACKEND_STORE_URI", "MLFLOW_REGISTRY_STORE_URI",
               "MLFLOW_DEFAULT_ARTIFACT_ROOT", "MLFLOW_ARTIFACTS_ONLY", "MLFLOW_ARTIFACTS_DESTINATION",
               "MLFLOW_WORKSPACE_STORE_URI", "MLFLOW_STATIC_PREFIX"}
_STOP_GRACE_S = 20.0  # a stopped server gets this long to finish before it is killed


def local_store(uri: str) -> str:
    """``uri`` when it is a store on this machine ``mlflow server`` can serve, else a one-line error."""
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        raise InvalidArgumentError(
            f"the tracking URI is already a server ({uri}): open it in a browser, there is nothing to serve here "
            "(unset VISEARCH_MODELS__MLFLOW_TRACKING_URI to serve the local store)")
    if scheme == "sqlite":
        if uri.rstrip("/") in ("sqlite:", "sqlite:/", "sqlite://") or ":memory:" in uri:
            raise InvalidArgumentError(f"{uri}: an in-memory SQLite store cannot be served; give a file (sqlite:///path)")
        return uri
    if scheme == "file" or (scheme == "" and uri):
        return uri
    raise InvalidArgumentError(
        f"{uri}: not a local store (sqlite:/// or file:) that visearch mlflow serve can serve; "
        "a shared server (Postgres, S3) runs mlflow server directly, see mlflow/README.md")


def _sqlite_path(uri: str) -> Path | None:
    if not uri.lower().startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///"):]).split("?", 1)[0])


def server_command(settings: Settings, host: str, port: int, workers: int) -> list[str]:
    """The ``mlflow server`` command line for the project's store."""
    backend = local_store(settings.models.mlflow_tracking_uri or "")
    artifacts = (settings.data_dir / "mlartifacts").resolve()
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend,
        "--serve-artifacts",
        "--artifacts-destination", artifacts.as_uri(),
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _check_port_free(host: str, port: int) -> None:
    """A one-line error now, rather than a server log full of tracebacks later."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise InvalidArgumentError(f"--host {host}: cannot bind to it ({e.strerror})") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise VisearchError(f"port {port} on {host} is taken (another MLflow server?): "
                                    f"stop it or pick another with --port") from None
            raise InvalidArgumentError(f"cannot bind {host}:{port}: {e.strerror}") from None


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (tests in-process): inherit stdout
        return None


def _sweep(pgid: int) -> None:
    """End whatever the server left in its process group (its workers, a job runner)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.3)


@mlflow_app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="bind address; the UI has no auth, keep loopback "
                                                   "[default: VISEARCH_MODELS__MLFLOW_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="HTTP port [default: VISEARCH_MODELS__MLFLOW_PORT, 5000]")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes")] = 1,
) -> None:
    """Run the MLflow tracking server (UI + REST API + registry) on the project's store until Ctrl-C."""
    settings = get_settings()
    host = host or settings.models.mlflow_host
    port = port or settings.models.mlflow_port
    command = server_command(settings, host, port, workers)
    _check_port_free(host, port)
    if (db := _sqlite_path(command[command.index("--backend-store-uri") + 1])) is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "mlartifacts").mkdir(parents=True, exist_ok=True)
    if host not in _LOOPBACK:
        console.print(f"[bold yellow]warning[/bold yellow]: binding to {host}: the MLflow UI and API have no "
                      "authentication, anyone who reaches this port can change the registry (see docs/mlflow.md)")

    url = _url(host, port)
    # mlflow server reads these from the environment where no flag is given: a sourced shared-server
    # env file (mlflow/server.env) must not point this local server's registry or artifacts elsewhere
    env = {k: v for k, v in os.environ.items() if k not in _SERVER_ENV}
    # the GenAI job runner (huey) is not needed to browse runs and move aliases; it costs processes
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    console.print(f"starting mlflow server on {host}:{port}: store {command[command.index('--backend-store-uri') + 1]}, "
                  f"artifacts {settings.data_dir / 'mlartifacts'} ...")
    # its own session: a terminal's Ctrl-C reaches it once, through us (uvicorn quits hard on a second signal)
    # and its log on stderr: stdout carries just the URL line
    child = subprocess.Popen(command, env=env, start_new_session=True, stdout=_stderr_fd())
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if stopping and child.poll() is None:  # a second Ctrl-C: no more waiting
            _sweep(child.pid)
        stopping.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # mlflow server passes it on to uvicorn, which shuts down cleanly

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        ready, stop_deadline = False, None
        while child.poll() is None:
            if stopping:
                stop_deadline = stop_deadline or time.monotonic() + _STOP_GRACE_S
                if time.monotonic() > stop_deadline:
                    _sweep(child.pid)
            elif not ready and _healthy(url):
                ready = True
                typer.echo(f"MLflow UI and tracking API: {url}")
                console.print(f"[bold green]mlflow is serving[/bold green] {url}  ·  point jobs at it with "
                              f"VISEARCH_MODELS__MLFLOW_TRACKING_URI={url} (MLFLOW_TRACKING_URI for plain MLflow)  "
                              "·  Ctrl-C stops")
                sys.stdout.flush()
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        _sweep(child.pid)
    if stopping:
        console.print("mlflow server stopped")
        return
    raise VisearchError(f"mlflow server exited with code {child.returncode} "
                        f"{'' if ready else 'before it answered '}(its log is above)")


@mlflow_app.command("uri")
def uri(
    host: Annotated[str | None, typer.Option(help="the server's address [default: VISEARCH_MODELS__MLFLOW_HOST]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="the server's port [default: VISEARCH_MODELS__MLFLOW_PORT]")] = None,
    export: Annotated[bool, typer.Option("--export", help="print shell exports: eval \"$(visearch mlflow uri --export)\"")] = False,
) -> None:
    """Print the tracking URI jobs and notebooks should use to reach the server.

    The configured URI when it is already a server (http/https), else the address
    ``visearch mlflow serve`` listens on with the same settings.
    """
    settings = get_settings()
    configured = settings.models.mlflow_tracking_uri or ""
    if urlparse(configured).scheme.lower() in ("http", "https"):
        found = configured
    else:
        found = _url(host or settings.models.mlflow_host, port or settings.models.mlflow_port)
    if export:
        typer.echo(f"export VISEARCH_MODELS__MLFLOW_TRACKING_URI={found}")
        typer.echo(f"export MLFLOW_TRACKING_URI={found}")
    else:
        typer.echo(found)
