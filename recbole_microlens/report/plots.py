"""The report's PNG plots (matplotlib's Agg canvas, no pyplot): overall metrics, HR@10 by
popularity group with ratios to a baseline (Figure 6), and the encoder sweep."""
from __future__ import annotations

import math
from pathlib import Path

from recbole_microlens.io import atomic_open
from recbole_microlens.report.tables import (
    HEADERS, METRICS, RATIO_METRIC, RunSummary, varies, finetune_modes, in_table_order,
    paper_row, ratio, sweep_rows,
)


def _figure(width: float, height: float, panels: int = 1):
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas, no global backend state

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, [figure.add_subplot(1, panels, index + 1) for index in range(panels)]


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path


NOT_AVAILABLE = "n/a"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _bars(axes, labels: list[str], series: dict[str, list[float]], paper: dict[str, list] | None,
          paper_label: str = "paper"):
    """Grouped bars (one colour per series) with the paper's values as black markers on top; a
    value that is missing or cannot be computed is written "n/a", never drawn as an empty bar."""
    width, marked = 0.8 / max(len(series), 1), False
    for index, (name, values) in enumerate(series.items()):
        positions = [x + (index - (len(series) - 1) / 2) * width for x in range(len(labels))]
        axes.bar(positions, [math.nan if _missing(v) else v for v in values], width, label=name)
        for position, value in zip(positions, values):
            if _missing(value):
                axes.text(position, 0, NOT_AVAILABLE, ha="center", va="bottom", fontsize=7,
                          rotation=90, color="dimgrey")
        marks = (paper or {}).get(name) or []
        if any(not _missing(v) for v in marks):
            axes.scatter(positions, [math.nan if _missing(v) else v for v in marks], marker="_",
                         s=300, color="black", zorder=3, label=None if marked else paper_label)
            marked = True
    rotation = 30 if max(map(len, labels), default=0) > 4 else 0
    axes.set_xticks(range(len(labels)), labels, rotation=rotation,
                    ha="right" if rotation else "center", fontsize=8)
    axes.legend(fontsize=7)


def reference_dataset(reference: dict | None) -> str | None:
    """The dataset the reference numbers were measured on (``dataset:`` in its yaml)."""
    return None if reference is None else reference.get("dataset")


def paper_marker_label(reference: dict | None, datasets) -> str:
    """"paper", plus where its numbers come from when that is not the plotted dataset."""
    source = reference_dataset(reference)
    if source is None or {d.lower() for d in datasets} == {source.lower()}:
        return "paper"
    return f"paper, on {source} (another dataset)"


def _datasets_title(summaries: list[RunSummary]) -> str:
    return ", ".join(dict.fromkeys(s.dataset for s in summaries))


def plot_overall(summaries: list[RunSummary], reference: dict | None, path: Path) -> Path:
    """HR@10 and NDCG@10 of every run, the paper's numbers marked (and said to be from another
    dataset when they are)."""
    ordered = in_table_order(summaries)
    with_dataset = varies(summaries, "dataset")
    labels = [s.label + (f"\n{s.dataset}" if with_dataset else "") for s in ordered]
    metrics = METRICS[:2]
    series = {HEADERS[m]: [s.test.get(m) for s in ordered] for m in metrics}
    papers = [paper_row(s, reference) or {} for s in ordered]
    paper = {HEADERS[m]: [row.get(m) for row in papers] for m in metrics}
    figure, (axes,) = _figure(max(6.0, 0.9 * len(ordered) + 2), 4.2)
    _bars(axes, labels, series, paper if reference else None,
          paper_marker_label(reference, [s.dataset for s in ordered]))
    axes.set_ylabel("test metric (HR@10, NDCG@10)")
    axes.set_xlabel("run")
    axes.set_title(f"{_datasets_title(ordered)}: test HR@10 and NDCG@10", fontsize=10)
    return _save(figure, path)


def plot_popularity(summaries: list[RunSummary], baseline: RunSummary, path: Path) -> Path:
    """HR@10 per popularity group; with other runs, a second panel of each run's HR@10 over the
    baseline's (Figure 6), "n/a" where the baseline's is 0. One run: one panel."""
    groups = list(baseline.by_popularity)
    others = [s for s in summaries if s is not baseline]
    figure, panels = _figure(10 if others else 5.5, 4, panels=2 if others else 1)
    left = panels[0]
    _bars(left, groups, {s.label: [s.by_popularity[g][RATIO_METRIC] for g in groups]
                         for s in summaries}, None)
    left.set_xlabel("popularity group (1 = coldest)")
    left.set_ylabel("test HR@10")
    left.set_title("HR@10 per group", fontsize=9)
    if others:
        right = panels[1]
        _bars(right, groups, {s.label: [ratio(s.by_popularity[g][RATIO_METRIC],
                                               baseline.by_popularity[g][RATIO_METRIC])
                                         for g in groups] for s in others}, None)
        right.axhline(1.0, color="grey", linewidth=0.8)
        right.set_xlabel("popularity group (1 = coldest)")
        right.set_ylabel(f"HR@10 / {baseline.label}'s HR@10")
        right.set_title(f"ratio to {baseline.label}", fontsize=9)
    figure.suptitle(f"{baseline.dataset}: test HR@10 by training popularity", fontsize=10)
    return _save(figure, path)


def plot_encoders(summaries: list[RunSummary], reference: dict | None, path: Path) -> Path:
    """HR@10 and NDCG@10 per encoder, one bar per fine-tuning mode, the paper's (Table 6) marked."""
    rows = sweep_rows(summaries)
    modes = finetune_modes(rows)
    labels = [encoder if len({k[:2] for k in rows}) == 1 else f"{model} {encoder}\n{dataset}"
              for dataset, model, encoder in rows]
    datasets = [dataset for dataset, _, _ in rows]
    figure, panels = _figure(max(7.0, 1.1 * len(rows) + 3), 4.2, panels=2)
    for axes, metric in zip(panels, METRICS[:2]):
        series = {mode: [runs[mode].test.get(metric) if mode in runs else None
                         for runs in rows.values()] for mode in modes}
        paper = {mode: [(paper_row(runs[mode], reference) or {}).get(metric) if mode in runs
                         else None for runs in rows.values()] for mode in modes}
        _bars(axes, labels, series, paper if reference else None,
              paper_marker_label(reference, datasets))
        axes.set_title(f"test {HEADERS[metric]}", fontsize=10)
        axes.set_xlabel("item encoder")
        axes.set_ylabel(f"test {HEADERS[metric]}")
    figure.suptitle(f"{', '.join(dict.fromkeys(datasets))}: encoder sweep", fontsize=10)
    return _save(figure, path)
