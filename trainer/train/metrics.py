"""Training metrics: one JSON object per line, and a PNG of the loss and accuracy curves drawn with Pillow."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))


class MetricsLog:
    """Appends records to ``metrics.jsonl``; resuming keeps the records up to the resumed step only."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.path) if resume_step is not None and r.get("step", 0) <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        """Append one record (a flat dict of numbers and strings)."""
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics file ([] when it does not exist)."""
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _series(records: Sequence[dict], keys: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for key in keys:
        points = [(float(r["step"]), float(r[key])) for r in records if key in r and "step" in r]
        points = [p for p in points if math.isfinite(p[1])]
        if points:
            out[key] = points
    return out


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str, series: dict, font) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((left, top - 14), title, fill=(0, 0, 0), font=font)
    if not series:
        draw.text((left + 10, top + 10), "no data", fill=(120, 120, 120), font=font)
        return
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for frac in (0.0, 0.5, 1.0):  # three horizontal grid lines with their values
        y = y0 + frac * (y1 - y0)
        py = at(x0, y)[1]
        draw.line((left, py, right, py), fill=(225, 225, 225))
        draw.text((left - 46, py - 6), f"{y:.3g}", fill=(0, 0, 0), font=font)
    draw.text((left, bottom + 4), f"step {x0:g}", fill=(0, 0, 0), font=font)
    draw.text((right - 60, bottom + 4), f"step {x1:g}", fill=(0, 0, 0), font=font)
    for n, (name, pts) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        if len(pts) == 1:
            px, py = at(*pts[0])
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)
        else:
            draw.line([at(x, y) for x, y in pts], fill=colour, width=2)
        draw.text((right - 150, top + 6 + 12 * n), name, fill=colour, font=font)


def plot_curves(records: Sequence[dict], path: Path, loss_keys: Sequence[str], acc_keys: Sequence[str]) -> Path:
    """Draw loss curves (top) and accuracy curves (bottom) against the step into a PNG; returns its path."""
    width, height = 900, 620
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    _panel(draw, (60, 30, width - 20, 280), "loss", _series(records, loss_keys), font)
    _panel(draw, (60, 340, width - 20, height - 30), "accuracy", _series(records, acc_keys), font)
    image.save(path)
    return Path(path)
