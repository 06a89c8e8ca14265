"""What every benchmark prints: each line to stdout and, with ``--out``, to a file as it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO


class Tee:
    def __init__(self, path: Path | None) -> None:
        self.fh: TextIO | None = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115

    def __call__(self, *parts: Any) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        if self.fh:
            self.fh.write(line + "\n")
            self.fh.flush()
