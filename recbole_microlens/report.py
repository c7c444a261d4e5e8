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

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from tabulate import tabulate

from recbole_microlens.io import atomic_open
from recbole_microlens.paths import yaml_file

METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20")
HEADERS = {"hit@10": "HR@10", "ndcg@10": "NDCG@10", "hit@20": "HR@20", "ndcg@20": "NDCG@20"}
RATIO_METRIC = "hit@10"  # Figure 6: relative HR@10
CLASS_ORDER = ("IDRec (CF)", "IDRec (SR)", "VIDRec", "VideoRec")
# Table 2's sections; a content tower decides first (GRU4Rec over an encoder is VideoRec).
TOWER_CLASSES = {"encoder": "VideoRec", "id+features": "VIDRec"}
MODEL_CLASSES = {
    **dict.fromkeys(("DSSM", "LightGCN", "NFM", "DeepFM"), "IDRec (CF)"),
    **dict.fromkeys(("NextItNet", "GRU4Rec", "SASRec", "SASRecSide"), "IDRec (SR)"),
    **dict.fromkeys(("YouTubeID", "YouTubeIDV", "MMGCNID", "MMGCNIDV", "GRCNID", "GRCNIDV",
                     "DSSMIDV", "SASRecIDV"), "VIDRec"),
    **dict.fromkeys(("NextItNetV", "GRU4RecV", "SASRecV"), "VideoRec"),
}
FINETUNE_ORDER = ("frozen", "top", "full")
SIDE_FEATURE_NAMES = {"pop_bin": "Pop", "tags": "Tag"}
WARM_SUFFIX = re.compile(r"-warm(\d+)$")
ANY = "*"  # a reference row's wildcard value
MATCH_DEFAULTS = {"item_encoder": None, "finetune": None, "side_features": (), "warm": 0}


# ------------------------------------------------------------------------------- results ---
@dataclass(frozen=True)
class RunSummary:
    """What the report reads from one result file."""

    path: Path
    model: str
    dataset: str
    sequential: bool
    item_tower: str
    item_encoder: str | None
    finetune: str | None
    side_features: tuple[str, ...]
    warm: int
    test: dict
    by_popularity: dict | None

    @property
    def model_class(self) -> str:
        return model_class(self.model, self.item_tower, self.sequential)

    @property
    def label(self) -> str:
        """The run's name in tables: ``SASRec``, ``SASRecID+Pop``, ``SASRecV (r3d-r18, top)``."""
        if self.item_encoder:
            return f"{self.model} ({self.item_encoder}, {self.finetune})"
        if self.side_features:
            return side_feature_label(self.model.removesuffix("Side"), self.side_features)
        return self.model

    def match_values(self) -> dict:
        return {"model": self.model, "item_encoder": self.item_encoder, "finetune": self.finetune,
                "side_features": self.side_features, "warm": self.warm}


def model_class(model: str, item_tower: str, sequential: bool) -> str:
    """IDRec (CF) / IDRec (SR) / VIDRec / VideoRec, as Table 2 groups its rows; a model the
    table does not know is an IDRec, sequential or not."""
    fallback = "IDRec (SR)" if sequential else "IDRec (CF)"
    return TOWER_CLASSES.get(item_tower) or MODEL_CLASSES.get(model) or fallback


def side_feature_label(model: str, features) -> str:
    """The paper's name of a side-feature run: ``SASRecID+Pop+Tag``."""
    return f"{model}ID+" + "+".join(SIDE_FEATURE_NAMES.get(name, name) for name in features)


def summarize(result: dict, path: Path) -> RunSummary:
    config = result.get("config") or {}
    tower = config.get("item_tower") or "id"
    encoder = config.get("item_encoder") if tower == "encoder" else None
    warm = config.get("warm")
    if warm is None:  # converted by `convert --warm` and trained without the key: read the name
        suffix = WARM_SUFFIX.search(result["dataset"])
        warm = int(suffix.group(1)) if suffix else 0
    test = result.get("test") or {}
    return RunSummary(
        path=Path(path), model=result["model"], dataset=result["dataset"],
        sequential="SEQUENTIAL" in str(config.get("MODEL_TYPE")), item_tower=tower,
        item_encoder=encoder, finetune=config.get("finetune") if encoder else None,
        side_features=tuple(config.get("side_features") or ()) if tower == "id+side" else (),
        warm=warm, test={key: value for key, value in test.items() if key in METRICS},
        by_popularity=test.get("by_popularity"))


def result_paths(paths) -> list[Path]:
    """Files as given; a folder stands for the ``*.json`` files in it."""
    expanded = []
    for path in map(Path, paths):
        expanded += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return expanded


def load_summaries(paths) -> list[RunSummary]:
    summaries = []
    for path in result_paths(paths):
        result = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(result, dict) or not {"model", "dataset", "test"} <= set(result):
            raise ValueError(f"{path} is not a result file (no model, dataset and test metrics)")
        summaries.append(summarize(result, path))
    if not summaries:
        raise ValueError("no result files to report on")
    return summaries


# ----------------------------------------------------------------------------- reference ---
def reference_path(name_or_path: str | os.PathLike) -> Path:
    """A yaml file, or the name of a packaged one (``paper_table2``)."""
    return yaml_file(name_or_path, "reference", "reference")


def load_reference(name_or_path: str | os.PathLike) -> dict:
    """``{"source": ..., "rows": [...]}`` with every row's side_features as a tuple."""
    reference = yaml.safe_load(reference_path(name_or_path).read_text(encoding="utf-8"))
    for row in reference["rows"]:
        if "side_features" in row:
            row["side_features"] = tuple(row["side_features"])
    return reference


def paper_row(summary: RunSummary, reference: dict | None) -> dict | None:
    """The first reference row whose keys all match the run (absent keys: their defaults)."""
    if reference is None:
        return None
    values = summary.match_values()
    for row in reference["rows"]:
        wanted = {**MATCH_DEFAULTS, **{key: row[key] for key in values if key in row}}
        if all(wanted[key] in (ANY, values[key]) for key in values):
            return row
    return None


# -------------------------------------------------------------------------------- tables ---
def _number(value) -> float | None:
    """A table cell: missing and undefined (NaN) values stay empty."""
    return None if value is None or math.isnan(value) else value


def _markdown(body: list[list], headers: list[str]) -> str:
    return tabulate(body, headers=headers, tablefmt="github", floatfmt=".4f", missingval="")


def _varies(summaries, attribute: str) -> bool:
    return len({getattr(summary, attribute) for summary in summaries}) > 1


def in_table_order(summaries: list[RunSummary]) -> list[RunSummary]:
    """Table 2's order of classes; within a class, the order the files were given."""
    rank = {name: index for index, name in enumerate(CLASS_ORDER)}
    return sorted(summaries, key=lambda summary: rank.get(summary.model_class, len(rank)))


def results_table(summaries: list[RunSummary], reference: dict | None = None) -> str:
    """Table 2's layout: Class, Model, HR@10, NDCG@10, HR@20, NDCG@20 (Dataset when several;
    the paper's numbers after ours when a reference is given)."""
    with_dataset = _varies(summaries, "dataset")
    headers = ["Class", "Model"] + ["Dataset"] * with_dataset + [HEADERS[m] for m in METRICS]
    if reference is not None:
        headers += [f"paper {HEADERS[m]}" for m in METRICS]
    body = []
    for summary in in_table_order(summaries):
        row = [summary.model_class, summary.label] + [summary.dataset] * with_dataset
        row += [_number(summary.test.get(metric)) for metric in METRICS]
        if reference is not None:
            paper = paper_row(summary, reference) or {}
            row += [_number(paper.get(metric)) for metric in METRICS]
        body.append(row)
    return _markdown(body, headers)


def by_dataset(summaries: list[RunSummary]) -> dict[str, list[RunSummary]]:
    groups: dict[str, list[RunSummary]] = {}
    for summary in summaries:
        groups.setdefault(summary.dataset, []).append(summary)
    return groups


def choose_baseline(summaries: list[RunSummary], label: str | None = None) -> RunSummary:
    """The run the others are divided by: the one labelled ``label``, else the first plain-ID
    run, else the first."""
    return (next((summary for summary in summaries if summary.label == label), None)
            or next((summary for summary in summaries if summary.item_tower == "id"), summaries[0]))


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan


def popularity_table(summaries: list[RunSummary], baseline: RunSummary) -> str:
    """Per training-popularity group (1 = coldest): its items, their training interactions,
    its test users, each run's HR@10 and, Figure 6, each run's HR@10 over the baseline's."""
    if any(summary.by_popularity.keys() != baseline.by_popularity.keys() for summary in summaries):
        raise ValueError(f"runs on {baseline.dataset} have different popularity_groups")
    others = [summary for summary in summaries if summary is not baseline]
    headers = ["Group", "Items", "Train interactions/item", "Test users"]
    headers += [f"{summary.label} HR@10" for summary in summaries]
    headers += [f"{summary.label} / {baseline.label}" for summary in others]
    body = []
    for group, info in baseline.by_popularity.items():
        row = [group, info["items"], f"{info['train_count_min']}-{info['train_count_max']}",
               info["n_users"]]
        row += [_number(summary.by_popularity[group][RATIO_METRIC]) for summary in summaries]
        row += [_number(ratio(summary.by_popularity[group][RATIO_METRIC],
                              info[RATIO_METRIC])) for summary in others]
        body.append(row)
    return _markdown(body, headers)


def sweep_rows(summaries: list[RunSummary]) -> dict[tuple, dict[str, RunSummary]]:
    """``{(dataset, model, encoder): {finetune: run}}`` in the order the files were given."""
    rows: dict[tuple, dict[str, RunSummary]] = {}
    for summary in summaries:
        if summary.item_encoder:
            key = (summary.dataset, summary.model, summary.item_encoder)
            rows.setdefault(key, {})[summary.finetune] = summary
    return rows


def finetune_modes(rows: dict) -> list[str]:
    present = {mode for modes in rows.values() for mode in modes}
    known = [mode for mode in FINETUNE_ORDER if mode in present]
    return known + sorted(present - set(known))


def encoder_table(summaries: list[RunSummary], reference: dict | None = None) -> str:
    """Table 6's layout: one row per encoder, HR@10 and NDCG@10 per fine-tuning mode."""
    rows = sweep_rows(summaries)
    modes = finetune_modes(rows)
    sweep = [run for modes_of in rows.values() for run in modes_of.values()]
    with_dataset = _varies(sweep, "dataset")
    metrics = METRICS[:2]
    headers = ["Dataset"] * with_dataset + ["Model", "Encoder"]
    headers += [f"{HEADERS[m]} ({mode})" for mode in modes for m in metrics]
    if reference is not None:
        headers += [f"paper {HEADERS[m]} ({mode})" for mode in modes for m in metrics]
    body = []
    for (dataset, model, encoder), runs in rows.items():
        row = [dataset] * with_dataset + [model, encoder]
        row += [_number(runs[mode].test.get(m)) if mode in runs else None
                for mode in modes for m in metrics]
        if reference is not None:
            papers = {mode: paper_row(runs[mode], reference) or {} for mode in runs}
            row += [_number(papers[mode].get(m)) if mode in papers else None
                    for mode in modes for m in metrics]
        body.append(row)
    return _markdown(body, headers)


def is_encoder_sweep(summaries: list[RunSummary]) -> bool:
    """Results that differ by encoder or fine-tuning mode."""
    return len({(s.item_encoder, s.finetune) for s in summaries if s.item_encoder}) > 1


# --------------------------------------------------------------------------------- plots ---
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
    with_dataset = _varies(summaries, "dataset")
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


# -------------------------------------------------------------------------------- report ---
def write_text(path: Path, text: str) -> Path:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def write_report(result_files, out_dir: str | os.PathLike, *, reference=None,
                 baseline: str | None = None) -> dict[str, Path]:
    """``report.md`` and its PNGs in ``out_dir``; returns them by name."""
    out_dir = Path(out_dir)
    summaries = load_summaries(result_files)
    reference = load_reference(reference) if reference is not None else None
    files = {"overall": plot_overall(summaries, reference, out_dir / "overall.png")}
    lines = ["# Results", "", results_table(summaries, reference), ""]
    if reference is not None:
        lines += [f"Paper numbers: {reference['source']}.", ""]
    lines += ["![test metrics](overall.png)", ""]
    broken_down = by_dataset([s for s in summaries if s.by_popularity])
    labels = [s.label for runs in broken_down.values() for s in runs]
    if baseline is not None and baseline not in labels:
        raise ValueError(f"no run labelled {baseline!r} has a popularity breakdown: {labels}")
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
    lines += ["Result files: " + ", ".join(f"`{s.path.name}`" for s in summaries), ""]
    files["report"] = write_text(out_dir / "report.md", "\n".join(lines))
    return files
