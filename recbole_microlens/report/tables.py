"""Result JSONs -> run summaries and the report's Markdown tables (Table 2, popularity groups,
encoder sweep), with the paper's numbers beside ours when a reference file is given."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
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
        result = read_input_json(path, "result file")
        if not isinstance(result, dict) or not {"model", "dataset", "test"} <= set(result):
            raise InputError(f"{path} is not a result file (no model, dataset and test metrics)")
        summaries.append(summarize(result, path))
    if not summaries:
        raise InputError("no result files to report on")
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


def varies(summaries, attribute: str) -> bool:
    return len({getattr(summary, attribute) for summary in summaries}) > 1


def in_table_order(summaries: list[RunSummary]) -> list[RunSummary]:
    """Table 2's order of classes; within a class, the order the files were given."""
    rank = {name: index for index, name in enumerate(CLASS_ORDER)}
    return sorted(summaries, key=lambda summary: rank.get(summary.model_class, len(rank)))


def results_table(summaries: list[RunSummary], reference: dict | None = None) -> str:
    """Table 2's layout: Class, Model, HR@10, NDCG@10, HR@20, NDCG@20 (Dataset when several;
    the paper's numbers after ours when a reference is given)."""
    with_dataset = varies(summaries, "dataset")
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
        raise InputError(f"runs on {baseline.dataset} have different popularity_groups")
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
    with_dataset = varies(sweep, "dataset")
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
