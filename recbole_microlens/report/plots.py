"""The report's PNG plots: overall metrics, HR@10 by popularity group with ratios to a baseline
(Figure 6), and the encoder sweep; their look is ``style``'s, shared by every figure."""
from __future__ import annotations

from pathlib import Path

from recbole_microlens.report import style
from recbole_microlens.report.tables import (
    HEADERS, METRICS, RATIO_METRIC, RunSummary, varies, finetune_modes, in_table_order,
    paper_row, ratio, sweep_rows,
)


def _save(figure, path: Path) -> Path:
    return style.save(figure, path)


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


def _std(summary: RunSummary, metric: str):
    return summary.test_std.get(metric) if len(summary.seeds) > 1 else None


def _errors(series_std: dict[str, list]) -> dict[str, list] | None:
    """Error bars only where some value is a mean over seeds."""
    return series_std if any(v is not None for values in series_std.values() for v in values) \
        else None


def plot_overall(summaries: list[RunSummary], reference: dict | None, path: Path) -> Path:
    """HR@10 and NDCG@10 of every run (std over seeds as error bars), the paper's numbers marked
    (and said to be from another dataset when they are)."""
    ordered = in_table_order(summaries)
    with_dataset = varies(summaries, "dataset")
    labels = [s.label + (f"\n{s.dataset}" if with_dataset else "") for s in ordered]
    metrics = METRICS[:2]
    series = {HEADERS[m]: [s.test.get(m) for s in ordered] for m in metrics}
    errors = _errors({HEADERS[m]: [_std(s, m) for s in ordered] for m in metrics})
    papers = [paper_row(s, reference) or {} for s in ordered]
    paper = {HEADERS[m]: [row.get(m) for row in papers] for m in metrics}
    figure, (axes,) = style.figure(max(6.0, 1.1 * len(ordered) + 2), 4.4)
    style.bars(axes, labels, series, style.colours(series), errors=errors,
               paper=paper if reference else None,
               paper_label=paper_marker_label(reference, [s.dataset for s in ordered]))
    style.labels(axes, "run", "test metric (HR@10, NDCG@10)",
                 f"{_datasets_title(ordered)}: test HR@10 and NDCG@10")
    return _save(figure, path)


def group_labels(baseline: RunSummary) -> list[str]:
    """Each popularity group with the number of test users whose target is in it."""
    return [f"{group}\n{info['n_users']:,} users" for group, info in baseline.by_popularity.items()]


def plot_popularity(summaries: list[RunSummary], baseline: RunSummary, path: Path) -> Path:
    """HR@10 per popularity group (its test users under the group), std over seeds as error
    bars; with other runs, a second panel of each run's HR@10 over the baseline's on a log scale
    (Figure 6), "n/a" where the baseline's is 0 and "0" where the run's is. A run keeps its
    colour in both panels. One run: one panel."""
    groups = list(baseline.by_popularity)
    ticks = group_labels(baseline)
    others = [s for s in summaries if s is not baseline]
    colour_of = style.colours(s.label for s in summaries)
    figure, panels = style.figure(11 if others else 5.5, 4.4, panels=2 if others else 1)
    left = panels[0]
    hits = {s.label: [s.by_popularity[g][RATIO_METRIC] for g in groups] for s in summaries}
    spread = _errors({s.label: [s.popularity_std.get(g) if len(s.seeds) > 1 else None
                                for g in groups] for s in summaries})
    style.bars(left, ticks, hits, colour_of, errors=spread, legend="upper left")
    style.labels(left, "popularity group (1 = coldest)", "test HR@10", "HR@10 per group")
    if others:
        right = panels[1]
        ratios = {s.label: [ratio(s.by_popularity[g][RATIO_METRIC],
                                  baseline.by_popularity[g][RATIO_METRIC]) for g in groups]
                  for s in others}
        style.bars(right, ticks, ratios, colour_of, log=True, legend=None)  # colours: left's
        style.reference_line(right)
        style.labels(right, "popularity group (1 = coldest)",
                     f"HR@10 / {baseline.label}'s HR@10", f"ratio to {baseline.label} (log scale)")
    style.title(figure, f"{baseline.dataset}: test HR@10 by training popularity")
    return _save(figure, path)


def plot_encoders(summaries: list[RunSummary], reference: dict | None, path: Path) -> Path:
    """HR@10 and NDCG@10 per encoder, one bar per fine-tuning mode, the paper's (Table 6) marked."""
    rows = sweep_rows(summaries)
    modes = finetune_modes(rows)
    labels = [encoder if len({k[:2] for k in rows}) == 1 else f"{model} {encoder}\n{dataset}"
              for dataset, model, encoder in rows]
    datasets = [dataset for dataset, _, _ in rows]
    figure, panels = style.figure(max(7.0, 1.1 * len(rows) + 3), 4.4, panels=2)
    for axes, metric in zip(panels, METRICS[:2]):
        series = {mode: [runs[mode].test.get(metric) if mode in runs else None
                         for runs in rows.values()] for mode in modes}
        errors = _errors({mode: [_std(runs[mode], metric) if mode in runs else None
                                 for runs in rows.values()] for mode in modes})
        paper = {mode: [(paper_row(runs[mode], reference) or {}).get(metric) if mode in runs
                         else None for runs in rows.values()] for mode in modes}
        style.bars(axes, labels, series, style.colours(modes), errors=errors,
                   paper=paper if reference else None,
                   paper_label=paper_marker_label(reference, datasets))
        style.labels(axes, "item encoder", f"test {HEADERS[metric]}", f"test {HEADERS[metric]}")
    style.title(figure, f"{', '.join(dict.fromkeys(datasets))}: encoder sweep")
    return _save(figure, path)
