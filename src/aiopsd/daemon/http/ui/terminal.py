"""``aiopsd status``: the status page in a terminal (rich), read from ``/api/v1/overview``."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aiopsd.daemon.http.ui.chart import points_from_details
from aiopsd.daemon.http.views import FindingView, Overview, RuleView
from aiopsd.durations import format_duration
from aiopsd.errors import AiopsdError

_STATE = {"ok": ("OK", "bold green"), "warn": ("ATTENTION", "bold yellow"), "bad": ("PROBLEM", "bold red")}
_LEVEL = {"ok": "green", "warn": "yellow", "bad": "red"}
_STATUS = {
    "succeeded": "green",
    "act": "green",
    "up": "green",
    "firing": "red",
    "failed": "red",
    "timed_out": "red",
    "interrupted": "red",
    "down": "red",
    "running": "blue",
    "pending": "blue",
    "awaiting_approval": "yellow",
    "resolved": "green",
    "waiting": "yellow",
}
_BARS = "▁▂▃▄▅▆▇█"


def fetch(url: str, timeout: float = 10.0) -> Overview:
    try:
        r = httpx.get(f"{url.rstrip('/')}/api/v1/overview", timeout=timeout)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise AiopsdError(f"cannot read aiopsd at {url}: {exc}; is the daemon running (aiopsd run)?") from None
    return Overview.model_validate(r.json())


def _t(dt: datetime | None) -> str:
    if dt is None:
        return "-"
    ago = (datetime.now(UTC) - dt).total_seconds()
    rel = f"{format_duration(ago if ago < 120 else ago - ago % 60)} ago" if ago >= 1 else "now"
    return f"{dt:%H:%M:%S} ({rel})"


def _status(s: str) -> Text:
    return Text(s.replace("_", " "), style=_STATUS.get(s, "yellow"))


def sparkline(fv: FindingView, width: int = 40) -> Text:
    """The series' last points as bars; anomalous points (score >= 1) in red."""
    pts = [p for p in points_from_details(fv.finding.details) if p.value is not None][-width:]
    if len(pts) < 2:
        return Text("")
    vals = [p.value for p in pts if p.value is not None]
    lo, hi = min(vals), max(vals)
    out = Text()
    for p in pts:
        assert p.value is not None
        i = 0 if hi == lo else round((p.value - lo) / (hi - lo) * (len(_BARS) - 1))
        out.append(_BARS[i], style="bold red" if (p.score or 0) >= 1 else "cyan")
    return out


def _health(r: RuleView) -> Text:
    h = r.health
    if h is None:
        return Text("-", style="dim")
    marks = "".join({"verified": "✓", "not_verified": "✗", "unknown": "?"}.get(str(o), "…") for o in h.outcomes)
    text = Text(f"{h.verified} of {h.judged} verified {marks}".strip())
    if h.demoted:
        text.append(f"\nDEMOTED, needs approval: {h.demoted_reason}", style="red")
    return text


def render(ov: Overview, url: str) -> Group:
    title, style = _STATE[ov.state]
    head = Text()
    for h in ov.headline:
        head.append(f"• {h.text}\n", style=_LEVEL[h.level])
    d = ov.daemon
    head.append(
        f"aiopsd {d.version} on {d.replica}, up {format_duration(d.uptime_seconds)}; "
        f"{ov.counts.alerts} alerts received; page: {url.rstrip('/')}/",
        style="dim",
    )
    parts: list[Panel | Table | Text] = [
        Panel(head, title=Text(title, style=style), title_align="left", border_style=style.split()[-1])
    ]

    findings = Table(title="What it saw", title_justify="left", expand=True)
    for col in ("kind", "status", "what", "score", "since", "series / decisions"):
        findings.add_column(col, overflow="fold")
    for fv in ov.findings:
        f = fv.finding
        decided = "; ".join(f"{x.rule}: {x.outcome if x.outcome == 'act' else x.code}" for x in fv.decisions)
        detail = Text.assemble(sparkline(fv), "\n" if fv.finding.details.get("points") else "", decided or "-")
        findings.add_row(
            str(f.kind), _status(str(f.status)), f.summary or f.source, f"{f.score:.2f}", _t(f.starts_at), detail
        )
    parts.append(findings if ov.findings else Text("What it saw: no findings in the last 24 hours", style="dim"))

    actions = Table(title="What it did", title_justify="left", expand=True)
    for col in ("#", "action", "status", "target", "started", "took", "rule: why"):
        actions.add_column(col, overflow="fold")
    for a in ov.actions:
        why = Text(f"{a.rule}: {a.reason}")
        if a.error:
            why.append(f"\n{a.error}", style="red")
        check = a.verification
        if check is not None:
            style = {"verified": "green", "not_verified": "red"}.get(str(check.outcome), "yellow")
            why.append(f"\n{check.outcome}", style=style)
            why.append(f": {check.reason}" if check.reason else "")
        actions.add_row(
            str(a.id),
            a.what + (" (dry run)" if a.dry_run else ""),
            _status(str(a.status)),
            ", ".join(a.targets) or "-",
            _t(a.started_at or a.created_at),
            format_duration(a.duration_seconds) if a.duration_seconds is not None else "-",
            why,
        )
    parts.append(actions if ov.actions else Text("What it did: no actions yet", style="dim"))

    held = Table(title="What it refused or held back, and why", title_justify="left", expand=True)
    for col in ("why", "rule", "target", "when", "reason"):
        held.add_column(col, overflow="fold")
    for hd in ov.held:
        held.add_row(
            Text(hd.label, style="yellow"),
            hd.decision.rule,
            ", ".join(hd.decision.targets) or "-",
            _t(hd.decision.decided_at),
            hd.decision.reason,
        )
    parts.append(held if ov.held else Text("Refused: nothing", style="dim"))

    sources = Table(title="Sources", title_justify="left", expand=True)
    for col in ("source", "state", "last good poll", "lag", "error"):
        sources.add_column(col, overflow="fold")
    for s in ov.sources:
        sources.add_row(
            f"{s.name} ({s.kind})",
            _status(s.state),
            _t(s.last_ok),
            format_duration(s.lag_seconds) if s.lag_seconds is not None else "-",
            s.error or "",
        )
    parts.append(sources if ov.sources else Text("Sources: none configured", style="dim"))

    rules = Table(title="Rules", title_justify="left", expand=True)
    for col in ("rule", "does", "cooldown", "budget", "circuit", "verified"):
        rules.add_column(col, overflow="fold")
    for r in ov.rules:
        cool = format_duration(r.cooldown_seconds) if r.cooldown_seconds else "none"
        if r.cooling_down_until:
            cool += f" (until {r.cooling_down_until:%H:%M:%S})"
        circuit = Text(f"open: {r.circuit.reason}", style="red") if r.circuit.open else Text("closed", style="green")
        budget = f"{r.actions_in_window} of {r.max_per_window}" if r.max_per_window else "-"
        rules.add_row(
            r.name + ("" if r.enabled else " (disabled)"), f"{r.action}: {r.what}", cool, budget, circuit, _health(r)
        )
    parts.append(rules if ov.rules else Text("Rules: none loaded", style="dim"))

    if ov.models:
        models = Table(title="Models", title_justify="left", expand=True)
        for col in ("model", "version", "metrics"):
            models.add_column(col, overflow="fold")
        for m in ov.models:
            for v in m.versions[:3]:
                metrics = ", ".join(f"{k} {val}" for k, val in v.metrics.items())
                models.add_row(m.name, v.version + (" (current)" if v.current else ""), metrics or "-")
        parts.append(models)
    if ov.lifecycle:
        cards = Table(title="Champion / challenger", title_justify="left", expand=True)
        for col in ("model", "champion", "challenger", "state", "compared", "decision"):
            cards.add_column(col, overflow="fold")
        for c in ov.lifecycle:
            k = c.comparison
            compared = (
                f"{k.rows} rows, {k.metric} {k.challenger:.3g} vs {k.champion:.3g}, [{k.low:+.3g}, {k.high:+.3g}]"
                if k and k.rows and None not in (k.challenger, k.champion, k.low, k.high)
                else "-"
            )
            decision = c.decision.get("reason") or c.decision.get("outcome") or "-" if c.decision else "pending"
            cards.add_row(c.model, str(c.champion or "-"), str(c.challenger or "-"), c.state, compared, decision)
        parts.append(cards)
    return Group(*parts)


def show(url: str, console: Console) -> Overview:
    ov = fetch(url)
    console.print(render(ov, url))
    return ov
