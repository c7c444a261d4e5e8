"""Result JSONs -> run summaries and the report's Markdown tables (Table 2, popularity groups,
encoder sweep), with the paper's numbers beside ours when a reference file is given."""
from __future__ import annotations

import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from tabulate import tabulate

from recbole_microlens.errors import InputError
from recbole_microlens.io import read_input_json
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
#: config keys that differ between runs of one experiment (where and how it ran, the seed):
#: runs differing only in these are seeds of one run (a mean with error bars), never two runs
RUN_KEYS = frozenset({"seed", "run_id", "checkpoint_dir", "result_file", "local_rank",
                      "world_size", "nproc", "ip", "port", "offset", "gpu_id", "device",
                      "single_spec", "show_progress", "state", "worker", "log_wandb"})
#: at most this many differing config keys name two runs apart ("SASRec (learning_rate=0.001)")
LABEL_KEYS = 2


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
    #: the run's name when its result does not make it (a caller's, or two runs told apart)
    name: str | None = None
    #: the seeds averaged into ``test`` (more than one: a mean over seeds)
    seeds: tuple = ()
    #: std over seeds: of each test metric, and of each popularity group's HR@10
    test_std: dict = field(default_factory=dict, compare=False)
    popularity_std: dict = field(default_factory=dict, compare=False)
    #: the resolved config (what tells two runs of one model apart)
    config: dict = field(default_factory=dict, compare=False, repr=False)
    sources: tuple = ()  # every result file behind this summary (several seeds: several)

    @property
    def model_class(self) -> str:
        return model_class(self.model, self.item_tower, self.sequential)

    @property
    def label(self) -> str:
        """The run's name in tables and legends: ``SASRec``, ``SASRecID+Pop``,
        ``SASRecV (r3d-r18, top)``, or the name it was given."""
        return self.name or self.model_label

    @property
    def model_label(self) -> str:
        """The name the result itself gives the run (model, tower, encoder, side features)."""
        if self.item_encoder:
            return f"{self.model} ({self.item_encoder}, {self.finetune})"
        if self.side_features:
            return side_feature_label(self.model.removesuffix("Side"), self.side_features)
        if self.item_tower == "id+features" and self.config.get("features_file"):
            return features_label(self.model, self.config["features_file"])
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


def features_label(model: str, features_file: str) -> str:
    """A VIDRec run by the features it fuses: ``SASRecID+minilm`` (the file extract-features
    names after its encoder), as the paper's ``SASRecID+V`` names its video features."""
    base = model[:-1] if model.endswith("IDV") else f"{model}ID"
    return f"{base}+{Path(features_file).stem}"


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
        by_popularity=test.get("by_popularity"),
        seeds=(result.get("seed", config.get("seed")),), config=config, sources=(Path(path),))


def result_paths(paths) -> list[Path]:
    """Files as given; a folder stands for the ``*.json`` files in it."""
    expanded = []
    for path in map(Path, paths):
        expanded += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return expanded


def load_summaries(paths) -> list[RunSummary]:
    """One summary per run: results that differ only by seed become one (mean, std over the
    seeds), and runs that would share a name get the config keys that tell them apart."""
    summaries = []
    for path in result_paths(paths):
        result = read_input_json(path, "result file")
        if not isinstance(result, dict) or not {"model", "dataset", "test"} <= set(result):
            raise InputError(f"{path} is not a result file (no model, dataset and test metrics)")
        summaries.append(summarize(result, path))
    if not summaries:
        raise InputError("no result files to report on")
    return distinct_labels(average_seeds(summaries))


# ------------------------------------------------------------------ seeds and run names ---
def _experiment(summary: RunSummary) -> tuple:
    """What a run is, seed and process details left out: equal for seeds of one run."""
    settings = {key: value for key, value in summary.config.items() if key not in RUN_KEYS}
    return (summary.model_label, summary.dataset, summary.name,
            json.dumps(settings, sort_keys=True, default=str))


def average_seeds(summaries: list[RunSummary]) -> list[RunSummary]:
    """Runs of one experiment with distinct seeds -> one summary with the mean of every test
    metric (and popularity group) and its std over the seeds; anything else is kept as is."""
    groups: dict[tuple, list[RunSummary]] = {}
    for summary in summaries:
        groups.setdefault(_experiment(summary), []).append(summary)
    averaged = []
    for runs in groups.values():  # in order of each experiment's first result
        seeds = [run.seeds[0] for run in runs]
        if len(runs) > 1 and None not in seeds and len(set(seeds)) == len(runs):
            averaged.append(_mean_over_seeds(runs))
        else:
            averaged += runs
    return averaged


def _mean_std(values: list) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_over_seeds(runs: list[RunSummary]) -> RunSummary:
    first = runs[0]
    test, test_std = {}, {}
    for metric in first.test:
        test[metric], test_std[metric] = _mean_std([run.test.get(metric) for run in runs])
    by_popularity, popularity_std = None, {}
    if all(run.by_popularity for run in runs):
        by_popularity = {}
        for group, info in first.by_popularity.items():
            means = {m: _mean_std([run.by_popularity[group].get(m) for run in runs])
                     for m in METRICS if m in info}
            by_popularity[group] = {**info, **{m: mean for m, (mean, _) in means.items()}}
            popularity_std[group] = means[RATIO_METRIC][1] if RATIO_METRIC in means else math.nan
    return replace(first, test=test, test_std=test_std, by_popularity=by_popularity,
                   popularity_std=popularity_std, seeds=tuple(sorted(run.seeds[0] for run in runs)),
                   sources=tuple(path for run in runs for path in run.sources))


def distinct_labels(summaries: list[RunSummary]) -> list[RunSummary]:
    """Runs on one dataset that would share a label are named by the config keys in which
    they differ (``SASRec (learning_rate=0.001)``), and by their result file where even those
    are equal (``SASRec [run2]``)."""
    named = list(summaries)
    clashes: dict[tuple, list[int]] = {}
    for index, summary in enumerate(named):
        clashes.setdefault((summary.label, summary.dataset), []).append(index)
    for (label, _), indices in clashes.items():
        if len(indices) < 2:
            continue
        runs = [named[index] for index in indices]
        keys = _differing_keys(runs)
        names = [f"{label} ({_settings_text(run, keys)})" if keys else label for run in runs]
        for index, run, name in zip(indices, runs, names):
            if names.count(name) > 1:  # the same settings twice: the result file tells them apart
                name += f" [{run.sources[0].stem if run.sources else index}]"
            named[index] = replace(run, name=name)
    return named


def _differing_keys(runs: list[RunSummary]) -> list[str]:
    """The first LABEL_KEYS config keys (by name) whose values differ among ``runs``."""
    keys = sorted(set().union(*(run.config for run in runs)) - RUN_KEYS)
    return [key for key in keys
            if len({json.dumps(run.config.get(key), sort_keys=True, default=str)
                    for run in runs}) > 1][:LABEL_KEYS]


def _settings_text(run: RunSummary, keys: list[str]) -> str:
    return ", ".join(f"{key}={run.config.get(key)}" for key in keys)


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


def _metric(value, std=None) -> str | None:
    """Our number in a table: ``0.0660``, or ``0.0660 ± 0.0012`` for a mean over seeds."""
    value = _number(value)
    if value is None:
        return None
    return f"{value:.4f}" if std is None or math.isnan(std) else f"{value:.4f} ± {std:.4f}"


def over_seeds(summaries: list[RunSummary]) -> bool:
    return any(len(summary.seeds) > 1 for summary in summaries)


def _markdown(body: list[list], headers: list[str]) -> str:
    return tabulate(body, headers=headers, tablefmt="github", floatfmt=".4f", missingval="")


def varies(summaries, attribute: str) -> bool:
    return len({getattr(summary, attribute) for summary in summaries}) > 1


def in_table_order(summaries: list[RunSummary]) -> list[RunSummary]:
    """Table 2's order of classes; within a class, the order the files were given."""
    rank = {name: index for index, name in enumerate(CLASS_ORDER)}
    return sorted(summaries, key=lambda summary: rank.get(summary.model_class, len(rank)))


def results_table(summaries: list[RunSummary], reference: dict | None = None) -> str:
    """Table 2's layout: Class, Model, HR@10, NDCG@10, HR@20, NDCG@20 (Dataset when several;
    mean ± std and the number of seeds for runs repeated over seeds; the paper's numbers after
    ours when a reference is given)."""
    with_dataset, with_seeds = varies(summaries, "dataset"), over_seeds(summaries)
    headers = ["Class", "Model"] + ["Dataset"] * with_dataset + [HEADERS[m] for m in METRICS]
    headers += ["Seeds"] * with_seeds
    if reference is not None:
        headers += [f"paper {HEADERS[m]}" for m in METRICS]
    body = []
    for summary in in_table_order(summaries):
        row = [summary.model_class, summary.label] + [summary.dataset] * with_dataset
        row += [_metric(summary.test.get(m), summary.test_std.get(m)) for m in METRICS]
        row += [len(summary.seeds)] * with_seeds
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
        raise InputError(f"runs on {baseline.dataset} have different popularity_groups")
    others = [summary for summary in summaries if summary is not baseline]
    headers = ["Group", "Items", "Train interactions/item", "Test users"]
    headers += [f"{summary.label} HR@10" for summary in summaries]
    headers += [f"{summary.label} / {baseline.label}" for summary in others]
    body = []
    for group, info in baseline.by_popularity.items():
        row = [group, info["items"], f"{info['train_count_min']}-{info['train_count_max']}",
               info["n_users"]]
        row += [_metric(summary.by_popularity[group][RATIO_METRIC],
                        summary.popularity_std.get(group)) for summary in summaries]
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
    with_dataset = varies(sweep, "dataset")
    metrics = METRICS[:2]
    headers = ["Dataset"] * with_dataset + ["Model", "Encoder"]
    headers += [f"{HEADERS[m]} ({mode})" for mode in modes for m in metrics]
    if reference is not None:
        headers += [f"paper {HEADERS[m]} ({mode})" for mode in modes for m in metrics]
    body = []
    for (dataset, model, encoder), runs in rows.items():
        row = [dataset] * with_dataset + [model, encoder]
        row += [_metric(runs[mode].test.get(m), runs[mode].test_std.get(m)) if mode in runs
                else None for mode in modes for m in metrics]
        if reference is not None:
            papers = {mode: paper_row(runs[mode], reference) or {} for mode in runs}
            row += [_number(papers[mode].get(m)) if mode in papers else None
                    for mode in modes for m in metrics]
        body.append(row)
    return _markdown(body, headers)


def is_encoder_sweep(summaries: list[RunSummary]) -> bool:
    """Results that differ by encoder or fine-tuning mode."""
    return len({(s.item_encoder, s.finetune) for s in summaries if s.item_encoder}) > 1
