"""WB-Synth generation speed: 1,000 products with 3,000 shopper photos.

Figure: wall time with one worker per core (target: under 120 s on 2 cores).
Baseline, same job in the same run: one worker process.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from visearch.config import SynthSettings
from visearch.synth import generate

BUDGET_S = 120.0


def timed(out: Path, products: int, scenes: int, workers: int) -> float:
    start = time.perf_counter()
    generate(out, products, seed=0, n_scenes=scenes, settings=SynthSettings(workers=workers))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--scenes", type=int, default=3000)
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-worker run")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        fast = timed(Path(tmp) / "all", args.products, args.scenes, cores)
        base = None if args.no_baseline else timed(Path(tmp) / "one", args.products, args.scenes, 1)
    result = {"products": args.products, "scenes": args.scenes, "cores": cores, "seconds": round(fast, 1),
              "baseline_1_worker_s": None if base is None else round(base, 1), "budget_s": BUDGET_S}
    print(f"synth {args.products} products + {args.scenes} shopper photos on {cores} cores: {fast:.1f} s "
          f"({'within' if fast <= BUDGET_S else 'OVER'} the {BUDGET_S:.0f} s budget)")
    if base is not None:
        print(f"baseline, 1 worker: {base:.1f} s; ratio {fast / base:.2f} (speed-up {base / fast:.2f}x)")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "synth.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
