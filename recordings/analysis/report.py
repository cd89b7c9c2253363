"""The human-vs-policy comparison as one self-contained HTML file (inline SVG charts, no external resources).

Charts are drawn here as SVG (matplotlib is not a dependency): the speed over
normalized time with the median and the p25–p75 band of each set, duration
histograms, phase bars, and a strip of every episode's value beside each metric.
The file opens in any browser offline and can be mailed as it is.
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recordings.analysis.comparison import (
    Comparison,
    Distribution,
    MetricComparison,
    findings,
    fmt_ratio,
    fmt_value,
    share_text,
)
from recordings.analysis.metrics import METRIC_BY_KEY, METRICS
from recordings.analysis.verdict import phase_means_of

HUMAN_COLOR = "#2b8cbe"
POLICY_COLOR = "#e6550d"
PHASE_COLORS = {"reach": "#74a9cf", "grasp": "#fd8d3c", "lift": "#78c679"}
COLORS = {"human": HUMAN_COLOR, "policy": POLICY_COLOR}
FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif"

CSS = f"""
body {{ {FONT}; margin: 24px auto; max-width: 1100px; color: #222; line-height: 1.4; padding: 0 16px; }}
h1 {{ font-size: 24px; margin-bottom: 4px; }} h2 {{ font-size: 18px; margin-top: 28px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; }}
.sets {{ color: #555; }} .human {{ color: {HUMAN_COLOR}; font-weight: 600; }}
.policy {{ color: {POLICY_COLOR}; font-weight: 600; }}
.verdict {{ font-size: 17px; padding: 10px 14px; border-radius: 6px; background: #f4f4f4; margin: 14px 0; }}
.verdict.warn {{ background: #fff3e0; border-left: 5px solid {POLICY_COLOR}; }}
.verdict.ok {{ background: #e8f5e9; border-left: 5px solid #2e7d32; }}
.cause {{ border: 1px solid #e0e0e0; border-radius: 6px; padding: 8px 14px; margin: 10px 0; }}
.cause h3 {{ margin: 4px 0; font-size: 16px; }} .fix {{ color: #1b5e20; }}
table {{ border-collapse: collapse; font-size: 13px; }} td, th {{ padding: 3px 8px; border-bottom: 1px solid #eee;
  text-align: right; vertical-align: middle; }}
th {{ background: #fafafa; }} td.l, th.l {{ text-align: left; }}
.fired {{ color: #c62828; font-weight: 600; }} .partly {{ color: #b26a00; font-weight: 600; }}
.quiet {{ color: #888; }} .met {{ color: #c62828; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 18px; }} .chart h4 {{ margin: 4px 0; font-size: 14px; }}
.small {{ font-size: 12px; color: #666; }}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def nice_step(span: float, max_ticks: int = 6) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10^k) giving at most ``max_ticks`` intervals over ``span``."""
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / max_ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> tuple[list[float], float]:
    """Round tick values inside ``[lo, hi]`` and their step."""
    step = nice_step(hi - lo, max_ticks)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [first + i * step for i in range(max(count, 0))], step


def tick_format(step: float) -> Callable[[float], str]:
    """Enough decimals to tell ticks ``step`` apart, no more."""
    decimals = 0
    while decimals < 6 and abs(round(step * 10**decimals) - step * 10**decimals) > 1e-6:
        decimals += 1
    return lambda x: f"{x:.{decimals}f}"


def _nice_max(x: float) -> float:
    """A round axis end at or above ``x`` (a multiple of its tick step)."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    step = nice_step(x, 5)
    return step * math.ceil(x / step - 1e-9)


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:.0f}"


class _Axes:
    """A plot area in an SVG of ``w`` x ``h`` with data ranges mapped to pixels."""

    def __init__(self, w: int, h: int, x_range: tuple[float, float], y_range: tuple[float, float],
                 margin: tuple[int, int, int, int] = (12, 14, 38, 52)) -> None:
        self.w, self.h = w, h
        self.top, self.right, self.bottom, self.left = margin
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        span = self.x1 - self.x0 or 1.0
        return self.left + (x - self.x0) / span * (self.w - self.left - self.right)

    def py(self, y: float) -> float:
        span = self.y1 - self.y0 or 1.0
        return self.h - self.bottom - (y - self.y0) / span * (self.h - self.top - self.bottom)

    def frame(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str,
              x_fmt: Callable[[float], str] = _num, y_fmt: Callable[[float], str] = _num) -> None:
        p = self.parts
        for y in y_ticks:
            yy = self.py(y)
            p.append(f'<line x1="{self.left}" y1="{yy:.1f}" x2="{self.w - self.right}" y2="{yy:.1f}" '
                     f'stroke="#eee"/>')
            p.append(f'<text x="{self.left - 5}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#555">{_e(y_fmt(y))}</text>')
        for x in x_ticks:
            xx = self.px(x)
            p.append(f'<line x1="{xx:.1f}" y1="{self.h - self.bottom}" x2="{xx:.1f}" y2="{self.h - self.bottom + 4}" '
                     f'stroke="#888"/>')
            p.append(f'<text x="{xx:.1f}" y="{self.h - self.bottom + 16}" text-anchor="middle" font-size="11" '
                     f'fill="#555">{_e(x_fmt(x))}</text>')
        p.append(f'<line x1="{self.left}" y1="{self.h - self.bottom}" x2="{self.w - self.right}" '
                 f'y2="{self.h - self.bottom}" stroke="#888"/>')
        p.append(f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.h - self.bottom}" stroke="#888"/>')
        p.append(f'<text x="{(self.left + self.w - self.right) / 2:.1f}" y="{self.h - 6}" text-anchor="middle" '
                 f'font-size="12" fill="#333">{_e(x_label)}</text>')
        p.append(f'<text x="14" y="{(self.top + self.h - self.bottom) / 2:.1f}" text-anchor="middle" font-size="12" '
                 f'fill="#333" transform="rotate(-90 14 {(self.top + self.h - self.bottom) / 2:.1f})">'
                 f'{_e(y_label)}</text>')

    def svg(self, title: str) -> str:
        return (f'<svg width="{self.w}" height="{self.h}" viewBox="0 0 {self.w} {self.h}" role="img" '
                f'aria-label="{_e(title)}" style="{FONT}"><title>{_e(title)}</title>' + "".join(self.parts)
                + "</svg>")


def _legend(ax: _Axes, items: Sequence[tuple[str, str]], spacing: int = 200) -> None:
    """Items side by side in the top margin."""
    for i, (label, color) in enumerate(items):
        x, y = ax.left + spacing * i, 15
        ax.parts.append(f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{color}" fill-opacity="0.8"/>')
        ax.parts.append(f'<text x="{x + 17}" y="{y}" font-size="12" fill="#333">{_e(label)}</text>')


def speed_bands_svg(c: Comparison, w: int = 520, h: int = 280) -> str:
    """Median speed over normalized time per set with its p25–p75 band."""
    u = np.linspace(0.0, 100.0, len(c.profiles["human"]["median"]))
    top = _nice_max(max(float(np.max(c.profiles[s]["p75"])) for s in ("human", "policy")) * 1.05)
    ax = _Axes(w, h, (0.0, 100.0), (0.0, top), margin=(30, 22, 38, 52))
    y_ticks, step = nice_ticks(0.0, top, 5)
    ax.frame(_ticks(0, 100, 6), y_ticks, "normalized time (% of the episode)", "speed (mm/s)",
             x_fmt=lambda x: f"{x:.0f}%", y_fmt=tick_format(step))
    for side in ("human", "policy"):
        prof, color = c.profiles[side], COLORS[side]
        upper = " ".join(f"{ax.px(x):.1f},{ax.py(y):.1f}" for x, y in zip(u, prof["p75"]))
        lower = " ".join(f"{ax.px(x):.1f},{ax.py(y):.1f}" for x, y in zip(u[::-1], prof["p25"][::-1]))
        ax.parts.append(f'<polygon points="{upper} {lower}" fill="{color}" fill-opacity="0.22" stroke="none"/>')
    for side in ("human", "policy"):
        line = " ".join(f"{ax.px(x):.1f},{ax.py(y):.1f}" for x, y in zip(u, c.profiles[side]["median"]))
        ax.parts.append(f'<polyline points="{line}" fill="none" stroke="{COLORS[side]}" stroke-width="2.2"/>')
    _legend(ax, [(f"human: median, p25–p75 (n={len(c.human)})", HUMAN_COLOR),
                 (f"policy: median, p25–p75 (n={len(c.policy)})", POLICY_COLOR)], spacing=235)
    return ax.svg("end-effector speed over normalized time")


def histogram_svg(c: Comparison, key: str = "duration_s", w: int = 420, h: int = 280, bins: int = 10) -> str:
    """Grouped histogram of one metric for both sets, on shared bins."""
    hv, pv = c.metrics[key].human.values, c.metrics[key].policy.values
    both = np.concatenate([hv, pv])
    m = METRIC_BY_KEY[key]
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    hc, _ = np.histogram(hv, edges)
    pc, _ = np.histogram(pv, edges)
    top = max(int(max(hc.max(initial=0), pc.max(initial=0))), 1)
    step = max(1, math.ceil(top / 5))
    top = step * math.ceil(top / step)
    ax = _Axes(w, h, (lo, hi), (0.0, float(top)), margin=(30, 22, 38, 52))
    x_ticks, x_step = nice_ticks(lo, hi, 5)
    ax.frame(x_ticks, list(range(0, top + 1, step)), f"{m.label} ({m.unit})", "episodes",
             x_fmt=tick_format(x_step))
    width = (ax.px(edges[1]) - ax.px(edges[0])) / 2
    for i in range(bins):
        for j, (counts, color) in enumerate(((hc, HUMAN_COLOR), (pc, POLICY_COLOR))):
            if counts[i]:
                x = ax.px(edges[i]) + j * width
                y = ax.py(counts[i])
                ax.parts.append(f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(width - 1, 1):.1f}" '
                                f'height="{ax.py(0) - y:.1f}" fill="{color}" fill-opacity="0.85"/>')
    _legend(ax, [("human", HUMAN_COLOR), ("policy", POLICY_COLOR)], spacing=90)
    return ax.svg(f"{m.label} histogram")


def phase_means(c: Comparison) -> dict[str, dict[str, float]]:
    """Mean seconds per phase and set (NaN-free: an episode without a phase adds 0 to it)."""
    return {"human": phase_means_of(c.human), "policy": phase_means_of(c.policy)}


def phases_svg(c: Comparison, w: int = 520, h: int = 160) -> str:
    """Stacked horizontal bars: mean reach, grasp and lift time of each set."""
    means = phase_means(c)
    total = max(sum(v.values()) for v in means.values())
    top = _nice_max(total)
    ax = _Axes(w, h, (0.0, top), (0.0, 2.0), margin=(26, 14, 38, 64))
    x_ticks, x_step = nice_ticks(0.0, top, 6)
    x_fmt = tick_format(x_step)
    for x in x_ticks:
        xx = ax.px(x)
        ax.parts.append(f'<line x1="{xx:.1f}" y1="{ax.top}" x2="{xx:.1f}" y2="{h - ax.bottom}" stroke="#eee"/>')
        ax.parts.append(f'<text x="{xx:.1f}" y="{h - ax.bottom + 16}" text-anchor="middle" font-size="11" '
                        f'fill="#555">{x_fmt(x)}</text>')
    ax.parts.append(f'<text x="{(ax.left + w - ax.right) / 2:.1f}" y="{h - 6}" text-anchor="middle" font-size="12" '
                    f'fill="#333">mean seconds per episode</text>')
    for row, side in enumerate(("human", "policy")):
        y0 = ax.py(1.9 - row) if row == 0 else ax.py(0.9)
        bar_h = (ax.py(0.0) - ax.py(1.0)) * 0.7
        ax.parts.append(f'<text x="{ax.left - 6}" y="{y0 + bar_h / 2 + 4:.1f}" text-anchor="end" font-size="12" '
                        f'fill="{COLORS[side]}" font-weight="600">{side}</text>')
        x = 0.0
        for ph, color in PHASE_COLORS.items():
            d = means[side][ph]
            if d <= 0:
                continue
            x0, x1 = ax.px(x), ax.px(x + d)
            ax.parts.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0, 0.5):.1f}" height="{bar_h:.1f}" '
                            f'fill="{color}"/>')
            if x1 - x0 > 34:
                ax.parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y0 + bar_h / 2 + 4:.1f}" text-anchor="middle" '
                                f'font-size="11" fill="#222">{ph} {d:.1f}s</text>')
            x += d
    for i, (ph, color) in enumerate(PHASE_COLORS.items()):
        xx = ax.left + 80 * i
        ax.parts.append(f'<rect x="{xx}" y="6" width="12" height="10" fill="{color}"/>')
        ax.parts.append(f'<text x="{xx + 16}" y="15" font-size="12" fill="#333">{ph}</text>')
    return ax.svg("phase durations")


def strip_svg(hv: np.ndarray, pv: np.ndarray, w: int = 170, h: int = 26) -> str:
    """Every episode's value as a dot on a shared axis: human above, policy below."""
    both = np.concatenate([hv, pv])
    if not both.size:
        return ""
    lo, hi = float(both.min()), float(both.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="distribution">',
             f'<line x1="4" y1="{h / 2}" x2="{w - 4}" y2="{h / 2}" stroke="#ddd"/>']
    for values, y, color in ((hv, h * 0.3, HUMAN_COLOR), (pv, h * 0.7, POLICY_COLOR)):
        for v in values:
            x = 5 + (v - lo) / (hi - lo) * (w - 10)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}" fill-opacity="0.6"/>')
    parts.append("</svg>")
    return "".join(parts)


def _metrics_table(c: Comparison) -> str:
    rows = ['<table><tr><th class="l">metric</th><th>human mean</th><th>median [p25–p75]</th><th>policy mean</th>'
            '<th>median [p25–p75]</th><th>policy / human [95% CI]</th><th class="l">every episode</th></tr>']
    like = c.duration_rows()
    if like:
        rows.append('<tr><th class="l" colspan="7">like with like</th></tr>')
        rows += [_metric_row(label, mc, "the verdict's duration comparison") for _, label, mc in like]
    group = None
    for m in METRICS:
        mc = c.metrics[m.key]
        if not mc.human.n and not mc.policy.n:
            continue
        if m.group != group:
            group = m.group
            rows.append(f'<tr><th class="l" colspan="7">{_e(group)}</th></tr>')
        rows.append(_metric_row(m.label + (f" ({m.unit})" if m.unit else ""), mc, m.help))
    rows.append("</table>")
    return "".join(rows)


def _metric_row(label: str, mc: MetricComparison, help_text: str) -> str:
    def spread(d: Distribution) -> str:
        if not d.n:
            return "–"
        return (f"{fmt_value(mc.key, d.stat('median'))} [{fmt_value(mc.key, d.stat('p25'))}–"
                f"{fmt_value(mc.key, d.stat('p75'))}]")
    return (f'<tr><td class="l" title="{_e(help_text)}">{_e(label)}</td>'
            f'<td>{fmt_value(mc.key, mc.human.stat("mean"))}</td><td class="small">{spread(mc.human)}</td>'
            f'<td>{fmt_value(mc.key, mc.policy.stat("mean"))}</td><td class="small">{spread(mc.policy)}</td>'
            f'<td>{_e(fmt_ratio(mc))}</td><td class="l">{strip_svg(mc.human.values, mc.policy.values)}</td></tr>')


def _episodes_table(c: Comparison) -> str:
    keys = ("duration_s", "time_to_lift_s", "idle_start_s", "idle_end_s", "speed_peak_mm_s", "rate_hz",
            "starved_share")
    head = "".join(f"<th>{_e(METRIC_BY_KEY[k].label)}</th>" for k in keys)
    rows = [f'<table><tr><th class="l">set</th><th class="l">episode</th><th class="l">source</th>'
            f'<th class="l">success</th>{head}</tr>']
    for side, items in (("human", c.human), ("policy", c.policy)):
        for m in items:
            cells = "".join(f"<td>{fmt_value(k, m.values[k])}</td>" for k in keys)
            rows.append(f'<tr><td class="l {side}">{side}</td><td class="l" title="{_e(m.path)}">{_e(m.name)}</td>'
                        f'<td class="l">{_e(m.source)}</td><td class="l">{_e(m.success)}</td>{cells}</tr>')
    rows.append("</table>")
    return "".join(rows)


def _diagnosis(c: Comparison) -> str:
    parts = []
    for i, cause in enumerate(c.causes, 1):
        share = share_text(cause, c.gap_s) if c.slower else ""
        effect = f" <span class='small'>({_e(share)})</span>" if share else ""
        evidence = "".join(f"<li>{_e(e)}</li>" for e in cause.evidence)
        parts.append(f"<div class='cause'><h3>{i}. {_e(cause.title)}{effect}</h3><ul>{evidence}</ul>"
                     f"<div class='fix'><b>Fix:</b> {_e(cause.fix)}</div></div>")
    if c.phase is not None:
        parts.append(f"<div class='cause'><h3>{_e(c.phase.text())}</h3></div>")
    found = findings(c.checks)
    if found:
        parts.append("<p><b>" + ("Also measured" if c.causes else "Measured differences") + ":</b></p><ul>"
                     + "".join(f"<li>{_e(f)}</li>" for f in found) + "</ul>")
    rows = ['<table><tr><th class="l">check</th><th class="l">result</th><th class="l">evidence (each with the '
            'threshold the check holds it to)</th><th class="l">threshold</th></tr>']
    for check in c.checks:
        css = {"fires": "fired", "partly": "partly", "no": "quiet"}[check.status]
        lines = [f"<span class='met'>{_e(x.text)}</span>" if x.met else _e(x.text) for x in check.criteria]
        lines += [_e(x) for x in check.context]
        rows.append(f'<tr><td class="l">{_e(check.title)}</td><td class="l"><span class="{css}">'
                    f'{_e(check.status_text())}</span></td><td class="l small">{"<br>".join(lines)}</td>'
                    f'<td class="l small">{_e(check.threshold)}</td></tr>')
    rows.append("</table>")
    return "".join(parts) + "<h3>Every check</h3><p class='small'>Evidence that crosses its threshold is in red.</p>" \
        + "".join(rows)


def html_report(c: Comparison, title: str = "Human vs policy: speed") -> str:
    """The whole report as one HTML string (UTF-8, no external resources)."""
    made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict_class = "ok" if c.ok else "warn"
    skipped = "".join(f"<li>{_e(side)}: {_e(p.name)} — {_e(reason)}</li>"
                      for side, items in c.skipped.items() for p, reason in items)
    notes = "".join(f"<li>{_e(n)}</li>" for n in c.notes)
    definitions = "".join(f"<tr><td class='l'>{_e(m.label)}</td><td class='l small'>{_e(m.help)}</td></tr>"
                          for m in METRICS)
    body = f"""
<h1>{_e(title)}</h1>
<div class="sets"><span class="human">human</span>: {len(c.human)} episode(s) from {_e(c.labels[0])}<br>
<span class="policy">policy</span>: {len(c.policy)} episode(s) from {_e(c.labels[1])}<br>
{_e(c.speed_text) + "<br>" if c.speed_text else ""}
<span class="small">made {made}; ratios are policy/human of the means, 95% percentile-bootstrap intervals from
{c.resamples} resamples (seed {c.seed}); every metric over the kept (trimmed) range, from the recorded tick times</span>
</div>
<div class="verdict {verdict_class}">{_e(c.verdict)}</div>
{"<ul class='small'>" + notes + "</ul>" if notes else ""}
<h2>Diagnosis</h2>
{_diagnosis(c)}
<h2>Charts</h2>
<div class="charts">
<div class="chart"><h4>End-effector speed over normalized time</h4>{speed_bands_svg(c)}</div>
<div class="chart"><h4>Episode durations</h4>{histogram_svg(c)}</div>
<div class="chart"><h4>Phases (from the gripper signal)</h4>{phases_svg(c)}</div>
</div>
<h2>Metrics</h2>
{_metrics_table(c)}
<h2>Episodes</h2>
{_episodes_table(c)}
{"<h3>Skipped</h3><ul class='small'>" + skipped + "</ul>" if skipped else ""}
<h2>Definitions</h2>
<table>{definitions}</table>
"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def write_report(c: Comparison, path: str | Path) -> Path:
    """Write :func:`html_report` to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(c), encoding="utf-8")
    return path

