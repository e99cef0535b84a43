"""Server-rendered SVG chart of one watched series: value, expected band, anomalous points, actions.

Plain SVG text built from numbers: no JavaScript, no fonts or files to fetch, so
the status page works with scripts off and without network. Every text that
comes from data is XML-escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any


@dataclass(frozen=True)
class Size:
    """Chart geometry in SVG units; the page scales the SVG to its column, so text scales with it."""

    width: int
    height: int
    left: int
    font: int
    xticks: int


WIDE = Size(width=640, height=250, left=62, font=13, xticks=5)
# For phone screens: fewer, larger units so the text stays readable when scaled to ~360px.
NARROW = Size(width=360, height=230, left=46, font=12, xticks=3)
RIGHT, TOP, BOTTOM = 10, 26, 36

# Consecutive steps differ by at most 2x, so some step always gives between target/2 and target+1 ticks.
_TIME_STEPS = (
    1,
    2,
    3,
    5,
    10,
    15,
    20,
    30,
    60,
    120,
    180,
    300,
    600,
    900,
    1200,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)


@dataclass(frozen=True)
class Point:
    ts: float
    value: float | None
    score: float | None
    yhat: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class Mark:
    """A vertical marker: an action that ran at ``ts``."""

    ts: float
    label: str
    ok: bool


def points_from_details(details: dict[str, Any]) -> list[Point]:
    """Rows of ``details.points`` keyed by ``details.points_columns`` (missing columns are None)."""
    rows = details.get("points") or []
    cols = list(details.get("points_columns") or ["ts", "value", "score", "yhat", "yhat_lower", "yhat_upper"])
    out: list[Point] = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != len(cols):
            continue
        rec = dict(zip(cols, row, strict=True))
        ts = _num(rec.get("ts"))
        if ts is None:
            continue
        out.append(
            Point(
                ts,
                _num(rec.get("value")),
                _num(rec.get("score")),
                _num(rec.get("yhat")),
                _num(rec.get("yhat_lower")),
                _num(rec.get("yhat_upper")),
            )
        )
    out.sort(key=lambda p: p.ts)
    return out


def _num(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def fmt_value(x: float) -> str:
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 1e5 or mag < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _time_step(span: float, target: int) -> float:
    """The step giving the tick count nearest ``target`` without exceeding ``target + 1``."""
    fitting = [s for s in _TIME_STEPS if span / s <= target + 1]
    if not fitting:
        return 86400.0 * math.ceil(span / 86400 / target)
    return float(min(fitting, key=lambda s: abs(span / s - target)))


def _time_label(ts: float, step: float, span: float) -> str:
    d = datetime.fromtimestamp(ts, UTC)
    if span > 86400:
        return d.strftime("%m-%d %H:%M")
    return d.strftime("%H:%M") if step >= 60 else d.strftime("%H:%M:%S")


def render_chart(
    points: Sequence[Point],
    *,
    title: str,
    marks: Sequence[Mark] = (),
    incident: tuple[float, float] | None = None,
    size: Size = WIDE,
) -> str:
    """An ``<svg>`` element (as text) for the status page, or a short note when there is nothing to plot."""
    pts = [p for p in points if p.value is not None]
    if len(pts) < 2:
        return '<p class="muted">Not enough points to plot yet.</p>'
    t0, t1 = pts[0].ts, pts[-1].ts
    if t1 <= t0:
        t1 = t0 + 1
    # Actions usually start just after the last plotted point: widen the time axis to show them.
    t1 = max([t1, *(m.ts for m in marks if t0 <= m.ts <= t1 + (t1 - t0) * 0.25)])
    ys = [v for p in pts for v in (p.value, p.lower, p.upper, p.yhat) if v is not None]
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    WIDTH, HEIGHT, LEFT, FONT = size.width, size.height, size.left, size.font  # noqa: N806
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ts: float) -> float:
        return LEFT + (ts - t0) / (t1 - t0) * pw

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * ph

    anomalous = [p for p in pts if p.score is not None and p.score >= 1.0]
    parts: list[str] = [
        f'<svg class="chart {"narrow" if size is NARROW else "wide"}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'xmlns="http://www.w3.org/2000/svg" '
        f'aria-label="{escape(title)}" data-anomalous="{len(anomalous)}" font-size="{FONT}">',
        f"<title>{escape(title)}</title>",
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>',
    ]
    if incident is not None:
        a, b = max(incident[0], t0), min(incident[1], t1)
        if b >= a:
            parts.append(
                f'<rect class="incident" x="{x(a):.1f}" y="{TOP}" width="{max(2.0, x(b) - x(a)):.1f}" '
                f'height="{ph}"><title>incident</title></rect>'
            )
    # y grid and labels
    ystep = _nice_step(hi - lo, 4)
    v = math.ceil(lo / ystep) * ystep
    while v <= hi:
        yy = y(v)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(
            f'<text class="ytick" x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{escape(fmt_value(v))}</text>'
        )
        v += ystep
    # x grid and time labels
    span = t1 - t0
    tstep = _time_step(span, size.xticks)
    tt = math.ceil(t0 / tstep) * tstep
    while tt <= t1:
        xx = x(tt)
        label = _time_label(tt, tstep, span)
        parts.append(f'<line class="grid" x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + ph}"/>')
        if xx + len(label) * FONT * 0.32 <= WIDTH:  # a label cut by the edge is worse than none
            parts.append(
                f'<text class="xtick" x="{xx:.1f}" y="{TOP + ph + 17}" text-anchor="middle">{escape(label)}</text>'
            )
        tt += tstep
    parts.append(f'<text class="axis" x="4" y="{HEIGHT - 4}">UTC</text>')
    # expected band, one polygon per run of points that have a band
    for seg in _segments(pts, lambda p: p.lower is not None and p.upper is not None):
        upper = " ".join(f"{x(p.ts):.1f},{y(p.upper):.1f}" for p in seg if p.upper is not None)
        lower = " ".join(f"{x(p.ts):.1f},{y(p.lower):.1f}" for p in reversed(seg) if p.lower is not None)
        parts.append(f'<polygon class="band" points="{upper} {lower}"><title>expected band</title></polygon>')
    for seg in _segments(pts, lambda p: p.yhat is not None):
        line = " ".join(f"{x(p.ts):.1f},{y(p.yhat):.1f}" for p in seg if p.yhat is not None)
        parts.append(f'<polyline class="yhat" points="{line}"/>')
    line = " ".join(f"{x(p.ts):.1f},{y(p.value):.1f}" for p in pts if p.value is not None)
    parts.append(f'<polyline class="value" points="{line}"/>')
    for p in anomalous:
        assert p.value is not None
        when = datetime.fromtimestamp(p.ts, UTC).strftime("%H:%M:%S")
        parts.append(
            f'<circle class="anomalous" cx="{x(p.ts):.1f}" cy="{y(p.value):.1f}" r="4.5">'
            f"<title>{when} UTC: value {escape(fmt_value(p.value))}, score {p.score:.2f}</title>"
            "</circle>"
        )
    for m in marks:
        if not t0 <= m.ts <= t1:
            continue
        xx = x(m.ts)
        cls = "mark ok" if m.ok else "mark bad"
        anchor = "end" if xx > LEFT + pw * 0.6 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(
            f'<g class="{cls}"><line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + ph}"/>'
            f'<text x="{xx + dx:.1f}" y="{TOP - 8}" text-anchor="{anchor}">{escape(m.label)}</text>'
            f"<title>{escape(m.label)}</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _segments(pts: Sequence[Point], ok: Any) -> list[list[Point]]:
    out: list[list[Point]] = []
    cur: list[Point] = []
    for p in pts:
        if ok(p):
            cur.append(p)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return [s for s in out if len(s) >= 2]
