"""Result JSONs -> a Markdown report and PNG plots people can look at.

* the main table in the layout of the paper's Table 2 (class, model, HR/NDCG@10/20), with the
  paper's numbers beside ours when a reference file is given (properties/reference/);
* per popularity group (results trained with ``popularity_groups``): HR@10 of each run and its
  ratio to a baseline run, the paper's Figure 6 (VideoRec / IDRec);
* an encoder sweep (results that differ by encoder or fine-tuning mode) in Table 6's layout.

Everything is derived from the result files alone (model, dataset and resolved config), so a
report can be rebuilt any time; every output is written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path

from recbole_microlens.io import write_text
from recbole_microlens.report.plots import (
    paper_marker_label, plot_encoders, plot_overall, plot_popularity,
)
from recbole_microlens.report.tables import (
    RunSummary, by_dataset, choose_baseline, encoder_table, is_encoder_sweep, load_reference,
    load_summaries, over_seeds, popularity_table, results_table, side_feature_label,
)
from recbole_microlens.errors import InputError

__all__ = ["RunSummary", "encoder_table", "load_reference", "load_summaries", "paper_marker_label",
           "plot_encoders", "plot_overall", "plot_popularity", "popularity_table",
           "results_table", "side_feature_label", "write_report"]


def write_report(result_files, out_dir: str | os.PathLike, *, reference=None,
                 baseline: str | None = None) -> dict[str, Path]:
    """``report.md`` and its PNGs in ``out_dir``; returns them by name."""
    out_dir = Path(out_dir)
    summaries = load_summaries(result_files)
    reference = load_reference(reference) if reference is not None else None
    files = {"overall": plot_overall(summaries, reference, out_dir / "overall.png")}
    lines = ["# Results", "", results_table(summaries, reference), ""]
    if over_seeds(summaries):
        lines += ["Runs repeated over seeds show the mean ± the standard deviation over their "
                  "seeds (error bars in the plots).", ""]
    if reference is not None:
        lines += [f"Paper numbers: {reference['source']}.", ""]
    lines += ["![test metrics](overall.png)", ""]
    broken_down = by_dataset([s for s in summaries if s.by_popularity])
    labels = [s.label for runs in broken_down.values() for s in runs]
    if baseline is not None and baseline not in labels:
        raise InputError(f"no run labelled {baseline!r} has a popularity breakdown: {labels}")
    for dataset, runs in broken_down.items():
        base = choose_baseline(runs, baseline)
        name = "popularity" if len(broken_down) == 1 else f"popularity-{dataset}"
        files[name] = plot_popularity(runs, base, out_dir / f"{name}.png")
        lines += [f"## {dataset}: test HR@10 by training popularity", "",
                  "Items in equal-count groups by their training interactions (1 = coldest); "
                  f"ratios are HR@10 over {base.label}'s (the paper's Figure 6).", "",
                  popularity_table(runs, base), "", f"![popularity groups]({name}.png)", ""]
    if is_encoder_sweep(summaries):
        files["encoders"] = plot_encoders(summaries, reference, out_dir / "encoders.png")
        lines += ["## Encoder sweep", "", encoder_table(summaries, reference), "",
                  "![encoder sweep](encoders.png)", ""]
    lines += ["Result files: " + ", ".join(f"`{path.name}`" for s in summaries
                                           for path in (s.sources or (s.path,))), ""]
    files["report"] = write_text(out_dir / "report.md", "\n".join(lines))
    return files
