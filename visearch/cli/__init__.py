"""The ``visearch`` command line.

Each sub-module registers its commands on :data:`app`; commands stay thin: parse,
build :class:`~visearch.config.Settings`, call one library function. Errors end as
one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from visearch.errors import VisearchError

__all__ = ["app", "main"]

app = typer.Typer(
    name="visearch",
    help="Search a marketplace by photo: synthesise data, train, index, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# registration: importing a module adds its commands to ``app``
from visearch.cli import deploy as _deploy  # noqa: E402,F401
from visearch.cli import eval as _eval  # noqa: E402,F401
from visearch.cli import eval_curve as _eval_curve  # noqa: E402,F401
from visearch.cli import eval_embedding as _eval_embedding  # noqa: E402,F401
from visearch.cli import eval_pipeline as _eval_pipeline  # noqa: E402,F401
from visearch.cli import eval_ranker as _eval_ranker  # noqa: E402,F401
from visearch.cli import eval_text as _eval_text  # noqa: E402,F401
from visearch.cli import eval_vision as _eval_vision  # noqa: E402,F401
from visearch.cli import experiments as _experiments  # noqa: E402,F401
from visearch.cli import index as _index  # noqa: E402,F401
from visearch.cli import info as _info  # noqa: E402,F401
from visearch.cli import mlflow_server as _mlflow_server  # noqa: E402,F401
from visearch.cli import models as _models  # noqa: E402,F401
from visearch.cli import search as _search  # noqa: E402,F401
from visearch.cli import serve as _serve  # noqa: E402,F401
from visearch.cli import simulate as _simulate  # noqa: E402,F401
from visearch.cli import synth as _synth  # noqa: E402,F401
from visearch.cli import tags as _tags  # noqa: E402,F401
from visearch.cli import train as _train  # noqa: E402,F401
from visearch.cli import train_embedding as _train_embedding  # noqa: E402,F401
from visearch.cli import vectorize as _vectorize  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every expected failure into one line."""
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=argv, prog_name="visearch", standalone_mode=False)
    except typer.Exit as e:
        rc = e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("visearch: interrupted", file=sys.stderr)
        rc = 130
    except typer.TyperException as e:  # usage errors, bad parameter values
        print(f"visearch: error: {e.format_message()}", file=sys.stderr)
        rc = e.exit_code
    except VisearchError as e:
        print(f"visearch: error: {e}", file=sys.stderr)
        rc = 1
    sys.exit(rc if isinstance(rc, int) else 0)
