"""Charts: plain data in, PNG bytes out (matplotlib's object API on the Agg canvas, no pyplot
state). Which font can draw the labels is asked here too, so matplotlib is imported nowhere else.
"""

from __future__ import annotations

import io
from typing import Any

CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)


SHIPPED_FONT = "Noto Sans SC"  # carried by a dependency (pylopdf-fonts-zh-cn), so every machine has it


def cjk_font() -> str | None:
    """The first installed font of :data:`CJK_FONTS`, if any: the shipped Noto Sans SC is
    registered with matplotlib first, so a fresh machine without system CJK fonts draws Chinese."""
    from matplotlib import font_manager  # lazy: matplotlib is heavy to import

    _register_shipped(font_manager)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _register_shipped(font_manager: Any) -> None:
    import pylopdf_fonts_zh_cn  # lazy: only charts need the font's path

    path = str(pylopdf_fonts_zh_cn.sans_path())
    if not any(f.fname == path for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)


def chart_locale(locale: str) -> tuple[str, str | None]:
    """The chart's labels are in ``locale`` if a font can draw it; without a CJK font
    installed, a zh-CN chart falls back to English labels rather than empty boxes."""
    if locale == "en":
        return "en", None
    font = cjk_font()
    return (locale, font) if font else ("en", None)


def risk_chart(rows: list[tuple[str, int, int, int, float | None]], labels: dict[str, str], font: str | None) -> bytes:
    """The monthly report's chart as PNG bytes. ``rows`` are ``(risk class, drawn, done,
    problems, problem rate or None)``; ``labels`` names ``drawn``, ``done``, ``problems``,
    ``rate``, ``risk``, ``count`` and ``title``. Two panels: the counts per risk class, and the
    problem-discovery rate."""
    import matplotlib  # lazy: matplotlib is heavy to import
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib is heavy to import
    from matplotlib.figure import Figure  # lazy: matplotlib is heavy to import
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib is heavy to import

    rc: dict[str, Any] = {"font.family": [font, "DejaVu Sans"]} if font else {}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]  # matplotlib types its keys as a Literal of every rc name
        fig = Figure(figsize=(8, 3.6), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2, width_ratios=[3, 2])
        risks = [r[0] for r in rows]
        xs = range(len(rows))
        width = 0.27
        for offset, index, key, color in (
            (-width, 1, "drawn", "#9bb7d4"),
            (0, 2, "done", "#3a6ea5"),
            (width, 3, "problems", "#d1495b"),
        ):
            left.bar([x + offset for x in xs], [r[index] for r in rows], width, label=labels[key], color=color)
        left.set_xticks(list(xs), risks)
        # whole numbers on the count axis, and a few of them even for an empty month
        left.set_ylim(0, max(5, max((max(r[1], r[2], r[3]) for r in rows), default=0) * 1.15))
        left.yaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_xlabel(labels["risk"])
        left.set_ylabel(labels["count"])
        left.legend(frameon=False, fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        left.set_title(labels["title"], fontsize=10)
        rates = [(r[4] or 0) * 100 for r in rows]
        bars = right.bar(list(xs), rates, 0.6, color="#d1495b")
        right.bar_label(
            bars, labels=[f"{v:.0f}%" if r[4] is not None else "–" for v, r in zip(rates, rows)], fontsize=8
        )
        right.set_xticks(list(xs), risks)
        right.set_ylim(0, 110)
        right.set_ylabel("%")
        right.set_xlabel(labels["risk"])
        right.set_title(labels["rate"], fontsize=10)
        for ax in (left, right):
            ax.spines[["top", "right"]].set_visible(False)
        out = io.BytesIO()
        fig.savefig(out, format="png")
    return out.getvalue()


def discovery_chart(
    cycles: list[int],
    series: list[tuple[str, list[float], str]],
    goal: float | None,
    labels: dict[str, str],
    font: str | None,
) -> bytes:
    """The risk engine's evaluation as PNG bytes: problem-discovery rates (in %) by cycle. ``series``
    are ``(label, values, line style)``; ``labels`` names ``x``, ``y``, ``title`` and ``goal``."""
    import matplotlib  # lazy: matplotlib is heavy to import
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: matplotlib is heavy to import
    from matplotlib.figure import Figure  # lazy: matplotlib is heavy to import

    rc: dict[str, Any] = {"font.family": [font, "DejaVu Sans"]} if font else {}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]  # matplotlib types its keys as a Literal of every rc name
        fig = Figure(figsize=(7, 4), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for label, values, style in series:
            ax.plot(cycles, values, style, label=label)
        if goal is not None:
            ax.axhline(goal, color="grey", linestyle=":", label=labels["goal"])
        ax.set_xticks(cycles)
        ax.set_ylim(0, 100)
        ax.set_xlabel(labels["x"])
        ax.set_ylabel(labels["y"])
        ax.set_title(labels["title"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, loc="best")
        ax.spines[["top", "right"]].set_visible(False)
        out = io.BytesIO()
        fig.savefig(out, format="png")
    return out.getvalue()
