"""Silhouettes of the WB-Synth categories, as primitives in the unit square.

A silhouette is a list of primitives; ``w`` and ``h`` stretch it about the centre and
``k`` moves a category-specific detail (sleeve length, heel height, handle size), so
two products of one category differ in proportions a camera sees.

Primitives: ``("poly", points)``, ``("ellipse", box)``, ``("rrect", box, radius)``,
``("stroke", points, width)``; a trailing ``0`` in ``("cut", primitive)`` erases.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Primitive", "silhouette"]

Primitive = tuple
Shape = Callable[[float], list[Primitive]]


def _tshirt(k: float) -> list[Primitive]:
    sl = 0.12 + 0.1 * k
    return [("poly", [(0.3, 0.15), (0.42, 0.12), (0.5, 0.18), (0.58, 0.12), (0.7, 0.15),
                      (0.9, 0.25 + sl * 0.3), (0.82, 0.25 + sl), (0.72, 0.32), (0.72, 0.88),
                      (0.28, 0.88), (0.28, 0.32), (0.18, 0.25 + sl), (0.1, 0.25 + sl * 0.3)])]


def _hoodie(k: float) -> list[Primitive]:
    return [("ellipse", (0.36, 0.04, 0.64, 0.3)),
            ("poly", [(0.3, 0.18), (0.7, 0.18), (0.92, 0.78 + 0.1 * k), (0.82, 0.82 + 0.1 * k), (0.72, 0.42),
                      (0.72, 0.92), (0.28, 0.92), (0.28, 0.42), (0.18, 0.82 + 0.1 * k), (0.08, 0.78 + 0.1 * k)])]


def _dress(k: float) -> list[Primitive]:
    f = 0.12 + 0.12 * k
    return [("poly", [(0.38, 0.06), (0.44, 0.06), (0.5, 0.14), (0.56, 0.06), (0.62, 0.06), (0.62, 0.42),
                      (0.62 + f, 0.94), (0.38 - f, 0.94), (0.38, 0.42)])]


def _trousers(k: float) -> list[Primitive]:
    g = 0.02 + 0.04 * k
    return [("poly", [(0.28, 0.06), (0.72, 0.06), (0.76 + g, 0.94), (0.56, 0.94), (0.5, 0.3),
                      (0.44, 0.94), (0.24 - g, 0.94)])]


def _skirt(k: float) -> list[Primitive]:
    f = 0.1 + 0.15 * k
    return [("rrect", (0.3, 0.2, 0.7, 0.3), 0.02), ("poly", [(0.3, 0.28), (0.7, 0.28), (0.7 + f, 0.8), (0.3 - f, 0.8)])]


def _sneaker(k: float) -> list[Primitive]:
    t = 0.3 - 0.1 * k
    return [("poly", [(0.08, 0.72), (0.1, 0.5), (0.3, t + 0.15), (0.45, t), (0.58, t + 0.05), (0.62, 0.45),
                      (0.9, 0.58), (0.94, 0.72), (0.9, 0.8), (0.1, 0.8)])]


def _boot(k: float) -> list[Primitive]:
    return [("poly", [(0.25, 0.06), (0.55, 0.06), (0.58, 0.55), (0.88, 0.68), (0.9, 0.86), (0.22, 0.86),
                      (0.22, 0.9 - 0.05 * k)])]


def _handbag(k: float) -> list[Primitive]:
    hh = 0.15 + 0.1 * k
    return [("stroke", [(0.32, 0.42), (0.36, 0.42 - hh), (0.5, 0.42 - hh - 0.05), (0.64, 0.42 - hh), (0.68, 0.42)], 0.05),
            ("poly", [(0.22, 0.42), (0.78, 0.42), (0.9, 0.88), (0.1, 0.88)])]


def _backpack(k: float) -> list[Primitive]:
    return [("stroke", [(0.42, 0.16), (0.5, 0.08), (0.58, 0.16)], 0.04),
            ("rrect", (0.22, 0.14, 0.78, 0.92), 0.14),
            ("rrect", (0.3, 0.55 - 0.05 * k, 0.7, 0.88), 0.06)]


def _cap(k: float) -> list[Primitive]:
    b = 0.2 + 0.15 * k
    return [("ellipse", (0.18, 0.2, 0.74, 0.86)), ("cut", ("rrect", (0.0, 0.6, 1.0, 1.0), 0.0)),
            ("poly", [(0.6, 0.56), (0.6 + b + 0.1, 0.6), (0.6 + b, 0.68), (0.18, 0.68), (0.18, 0.56)])]


def _mug(k: float) -> list[Primitive]:
    return [("stroke", [(0.68, 0.35), (0.86, 0.38), (0.88, 0.58), (0.68, 0.68)], 0.06 + 0.03 * k),
            ("rrect", (0.2, 0.22, 0.7, 0.86), 0.04)]


def _bottle(k: float) -> list[Primitive]:
    n = 0.05 + 0.04 * k
    return [("rrect", (0.5 - n, 0.04, 0.5 + n, 0.3), 0.01),
            ("poly", [(0.5 - n, 0.28), (0.5 + n, 0.28), (0.68, 0.42), (0.68, 0.96), (0.32, 0.96), (0.32, 0.42)])]


def _vase(k: float) -> list[Primitive]:
    pts_r, pts_l = [], []
    for i in range(17):
        y = 0.06 + 0.88 * i / 16
        r = 0.12 + 0.2 * math.sin(math.pi * (i / 16) * (0.9 + 0.3 * k)) ** 2 + 0.04 * (i == 0)
        pts_r.append((0.5 + r, y))
        pts_l.append((0.5 - r, y))
    return [("poly", pts_r + pts_l[::-1])]


def _lamp(k: float) -> list[Primitive]:
    s = 0.16 + 0.08 * k
    return [("poly", [(0.5 - s * 0.6, 0.06), (0.5 + s * 0.6, 0.06), (0.5 + s + 0.1, 0.4), (0.5 - s - 0.1, 0.4)]),
            ("rrect", (0.47, 0.38, 0.53, 0.86), 0.0), ("ellipse", (0.28, 0.82, 0.72, 0.94))]


def _chair(k: float) -> list[Primitive]:
    b = 0.06 + 0.3 * k
    return [("rrect", (0.25, b, 0.38, 0.6), 0.02), ("rrect", (0.25, 0.52, 0.78, 0.6), 0.0),
            ("rrect", (0.25, 0.58, 0.3, 0.94), 0.0), ("rrect", (0.72, 0.58, 0.78, 0.94), 0.0)]


def _clock(k: float) -> list[Primitive]:
    a = 2 * math.pi * k
    return [("ellipse", (0.08, 0.08, 0.92, 0.92)),
            ("detail", [(0.5, 0.5), (0.5 + 0.28 * math.sin(a), 0.5 - 0.28 * math.cos(a))], 0.03),
            ("detail", [(0.5, 0.5), (0.5, 0.22)], 0.02)]


def _phone_case(k: float) -> list[Primitive]:
    return [("rrect", (0.28, 0.04, 0.72, 0.96), 0.06 + 0.04 * k),
            ("detail", [(0.36, 0.12), (0.36 + 0.001, 0.12)], 0.06)]


def _watch(k: float) -> list[Primitive]:
    r = 0.18 + 0.08 * k
    return [("rrect", (0.4, 0.02, 0.6, 0.98), 0.03), ("ellipse", (0.5 - r, 0.5 - r, 0.5 + r, 0.5 + r))]


def _glasses(k: float) -> list[Primitive]:
    r = 0.15 + 0.04 * k
    return [("ellipse", (0.3 - r, 0.5 - r, 0.3 + r, 0.5 + r)), ("ellipse", (0.7 - r, 0.5 - r, 0.7 + r, 0.5 + r)),
            ("stroke", [(0.38, 0.46), (0.5, 0.42), (0.62, 0.46)], 0.04),
            ("stroke", [(0.3 - r, 0.46), (0.04, 0.4)], 0.03), ("stroke", [(0.7 + r, 0.46), (0.96, 0.4)], 0.03)]


def _umbrella(k: float) -> list[Primitive]:
    pts = [(0.5 + 0.45 * math.cos(t), 0.45 - 0.38 * math.sin(t)) for t in (math.pi * i / 20 for i in range(21))]
    scallop = [(0.95 - 0.9 * i / 8, 0.45 + (0.05 + 0.03 * k) * (i % 2)) for i in range(9)]
    return [("poly", pts + scallop[::-1]), ("stroke", [(0.5, 0.45), (0.5, 0.86), (0.56, 0.94), (0.62, 0.86)], 0.035)]


def _teapot(k: float) -> list[Primitive]:
    return [("ellipse", (0.22, 0.3, 0.72, 0.9)), ("ellipse", (0.38, 0.18, 0.56, 0.34)),
            ("poly", [(0.66, 0.55), (0.92, 0.3 - 0.1 * k), (0.95, 0.34 - 0.1 * k), (0.7, 0.75)]),
            ("stroke", [(0.26, 0.45), (0.1, 0.5), (0.12, 0.7), (0.28, 0.74)], 0.05)]


def _headphones(k: float) -> list[Primitive]:
    band = [(0.5 + 0.36 * math.cos(t), 0.55 - (0.42 + 0.05 * k) * math.sin(t)) for t in (math.pi * i / 16 for i in range(17))]
    return [("stroke", band, 0.06), ("rrect", (0.08, 0.48, 0.26, 0.86), 0.06), ("rrect", (0.74, 0.48, 0.92, 0.86), 0.06)]


def _book(k: float) -> list[Primitive]:
    return [("rrect", (0.2, 0.08, 0.8 - 0.1 * k, 0.92), 0.02), ("detail", [(0.28, 0.08), (0.28, 0.92)], 0.02)]


def _sofa(k: float) -> list[Primitive]:
    a = 0.1 + 0.06 * k
    return [("rrect", (0.1, 0.28, 0.9, 0.62), 0.05), ("rrect", (0.02, 0.42, 0.02 + a, 0.8), 0.03),
            ("rrect", (0.98 - a, 0.42, 0.98, 0.8), 0.03), ("rrect", (0.06, 0.56, 0.94, 0.8), 0.03),
            ("rrect", (0.1, 0.78, 0.14, 0.88), 0.0), ("rrect", (0.86, 0.78, 0.9, 0.88), 0.0)]


_SHAPES: dict[str, Shape] = {
    "tshirt": _tshirt, "hoodie": _hoodie, "dress": _dress, "trousers": _trousers, "skirt": _skirt,
    "sneaker": _sneaker, "boot": _boot, "handbag": _handbag, "backpack": _backpack, "cap": _cap,
    "mug": _mug, "bottle": _bottle, "vase": _vase, "lamp": _lamp, "chair": _chair, "clock": _clock,
    "phone_case": _phone_case, "watch": _watch, "glasses": _glasses, "umbrella": _umbrella,
    "teapot": _teapot, "headphones": _headphones, "book": _book, "sofa": _sofa,
}


def silhouette(category: str, w: float, h: float, k: float) -> list[Primitive]:
    """Primitives of ``category`` stretched by ``w``/``h`` about the centre, detail ``k``."""

    def tx(p: tuple[float, float]) -> tuple[float, float]:
        return 0.5 + (p[0] - 0.5) * w, 0.5 + (p[1] - 0.5) * h

    def warp(prim: Primitive) -> Primitive:
        kind = prim[0]
        if kind == "cut":
            return ("cut", warp(prim[1]))
        if kind in ("poly",):
            return (kind, [tx(p) for p in prim[1]])
        if kind in ("stroke", "detail"):
            return (kind, [tx(p) for p in prim[1]], prim[2] * min(w, h))
        x0, y0 = tx(prim[1][:2])
        x1, y1 = tx(prim[1][2:])
        box = (x0, y0, x1, y1)
        return (kind, box) if kind == "ellipse" else (kind, box, prim[2] * min(w, h))

    return [warp(p) for p in _SHAPES[category](k)]
