"""The one look of every figure the project draws (report, tune heatmap, benchmark plots).

matplotlib's Agg canvas without pyplot (no global backend state). A run keeps its colour in every
panel of a figure (colours are given per label, not per panel position); bars carry error bars
when a value is a mean over seeds; a value that is missing or cannot be computed reads "n/a" and
a value of exactly 0 reads "0", so the two never look alike; ratio panels are on a log scale.
"""
from __future__ import annotations

import math
from pathlib import Path

from recbole_microlens.io import atomic_open

DPI = 120
FONT = {"tick": 8, "label": 9, "title": 10, "legend": 8, "note": 9}
#: tab10, the default cycle: a label's colour is its first appearance's slot in a figure
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
NOT_AVAILABLE = "n/a"
RATIO_BASE = 1.0  # where a ratio panel's bars start: "as good as the baseline"
NOT_AVAILABLE_COLOUR = "dimgrey"
PAPER_MARKER = {"marker": "_", "s": 300, "color": "black", "zorder": 3}
CHOSEN_EDGE = {"fill": False, "edgecolor": "red", "linewidth": 2.5}


def figure(width: float, height: float, panels: int = 1):
    """A figure and its ``panels`` axes side by side."""
    from matplotlib.figure import Figure

    made = Figure(figsize=(width, height), dpi=DPI)
    return made, [made.add_subplot(1, panels, index + 1) for index in range(panels)]


def save(made, path: Path) -> Path:
    """PNG, atomically; the bounding box grows to every label (nothing clipped at the edges)."""
    made.tight_layout()
    with atomic_open(path, "wb") as handle:
        made.savefig(handle, format="png", bbox_inches="tight", pad_inches=0.1)
    return path


def colours(labels) -> dict[str, str]:
    """One colour per distinct label, in order of first appearance, for every panel."""
    distinct = list(dict.fromkeys(labels))
    return {label: PALETTE[index % len(PALETTE)] for index, label in enumerate(distinct)}


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def bars(axes, groups: list[str], series: dict[str, list], colour_of: dict[str, str], *,
         errors: dict[str, list] | None = None, paper: dict[str, list] | None = None,
         paper_label: str = "paper", log: bool = False, legend: str | None = "best") -> None:
    """Grouped bars, one colour per series (``colour_of``), ``errors`` (std over seeds) as error
    bars, the paper's values as black markers. A missing value is written "n/a" and a zero "0"
    where its bar would stand; on a log axis (``log``, for ratios) a zero has no bar at all, so
    the label is all there is and it must read differently from "n/a". ``legend``: where the
    legend goes (None: none, e.g. a panel whose colours another panel's legend names)."""
    width, marked = 0.8 / max(len(series), 1), False
    upright = len(series) > 3  # narrow bars: labels turn upright so neighbours do not overlap
    for index, (name, values) in enumerate(series.items()):
        positions = [x + (index - (len(series) - 1) / 2) * width for x in range(len(groups))]
        heights = [math.nan if missing(v) or (log and v <= 0) else v for v in values]
        spread = (errors or {}).get(name)
        yerr = None if spread is None else [math.nan if missing(e) else e for e in spread]
        base = RATIO_BASE if log else 0.0  # a ratio's bar runs from 1, up or down
        axes.bar(positions, [h - base for h in heights], width, bottom=base, label=name,
                 color=colour_of[name], yerr=yerr, capsize=3 if yerr else 0,
                 error_kw={"elinewidth": 1})
        for position, value in zip(positions, values):
            if missing(value):
                _note(axes, position, NOT_AVAILABLE, NOT_AVAILABLE_COLOUR, upright)
            elif value == 0:
                _note(axes, position, "0", colour_of[name], False, bold=True)
        marks = (paper or {}).get(name) or []
        if any(not missing(v) for v in marks):
            axes.scatter(positions, [math.nan if missing(v) else v for v in marks],
                         label=None if marked else paper_label, **PAPER_MARKER)
            marked = True
    if log:
        log_axis(axes, [v for values in series.values() for v in values
                        if not missing(v) and v > 0])
    rotation = 30 if max(map(len, groups), default=0) > 6 and "\n" not in "".join(groups) else 0
    axes.set_xticks(range(len(groups)), groups, rotation=rotation,
                    ha="right" if rotation else "center", fontsize=FONT["tick"])
    axes.set_xlim(-0.5, len(groups) - 0.5)  # every group in view, drawn or "n/a"
    axes.tick_params(axis="y", labelsize=FONT["tick"])
    if legend:
        axes.legend(fontsize=FONT["legend"], loc=legend)


def log_axis(axes, values: list[float]) -> None:
    """A log y axis around 1 and ``values``, with room on both sides, whose ticks read as plain
    numbers (0.2, 0.5, 1, 2, 5, 10, 20)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_yscale("log")
    axes.set_ylim(min(values + [RATIO_BASE]) / 1.8, max(values + [RATIO_BASE]) * 1.8)
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())


def _note(axes, x: float, text: str, colour: str, upright: bool, bold: bool = False) -> None:
    """A label just above the x axis (axes coordinates, so it shows on any scale, never clipped)."""
    axes.text(x, 0.015, text, transform=axes.get_xaxis_transform(), ha="center", va="bottom",
              fontsize=FONT["note"], color=colour, rotation=90 if upright else 0,
              fontweight="bold" if bold else "normal", clip_on=False, zorder=4)


def reference_line(axes, y: float = RATIO_BASE) -> None:
    """The ratio panels' "as good as the baseline" line."""
    axes.axhline(y, color="grey", linewidth=0.8, linestyle="--", zorder=1)


def labels(axes, x: str, y: str, title: str | None = None) -> None:
    axes.set_xlabel(x, fontsize=FONT["label"])
    axes.set_ylabel(y, fontsize=FONT["label"])
    if title:
        axes.set_title(title, fontsize=FONT["title"])


def title(made, text: str) -> None:
    made.suptitle(text, fontsize=FONT["title"])


def mark_cell(axes, column: int, row: int, text: str = "chosen") -> None:
    """Outline one heatmap cell (the configuration a sweep chose) and say so."""
    from matplotlib.patches import Rectangle

    axes.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, **CHOSEN_EDGE))
    axes.text(column, row + 0.32, text, ha="center", va="center", fontsize=FONT["note"],
              color=CHOSEN_EDGE["edgecolor"], fontweight="bold")
