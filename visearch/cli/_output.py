"""Keep stdout for the one JSON object a ``--json`` command prints."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["stdout_to_stderr", "print_result", "who"]


def print_result(result: object, as_json: bool) -> None:
    """A command's result: one JSON line for a program (``--json``), indented and coloured for a person."""
    text = json.dumps(result, ensure_ascii=False)
    if as_json:
        print(text)
    else:
        from rich.console import Console

        Console().print_json(text)


@contextmanager
def stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send everything written to stdout (Python or native libraries) to stderr meanwhile.

    Third-party libraries (ultralytics, onnxruntime) log to stdout; a JSON consumer
    must still read exactly one object there.
    """
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def who(given: str | None = None) -> str:
    """Who acts, for audit records (promotions, experiment changes): ``--by``, else the login name."""
    return given or os.environ.get("USER") or getpass.getuser()
