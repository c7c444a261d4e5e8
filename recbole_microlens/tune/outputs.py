"""What a sweep reports: a row per trial, the choice (on valid metrics only), and the CSV,
Markdown table, best-config yaml and learning rate x embedding size heatmap."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from recbole_microlens.io import atomic_open, write_text
from recbole_microlens.tune.space import EMBEDDING_SIZE, SELECTION, SETUP, model_settings

MARKDOWN_HIDDEN = ("checkpoint", "trial_dir")  # in the CSV; too long for the Markdown table


@dataclass
class TuneResult:
    """Every trial's row (as in the CSV), the chosen one, its config and the files written."""

    experiment_dir: Path
    trials: list[dict]
    best: dict | None
    best_config: dict | None
    files: dict[str, Path]


def report_sweep(results, experiment_dir: Path, swept: list[str], model: str,
                 dataset: str = "") -> TuneResult:
    """Rows for every trial, the choice (valid only), and the CSV, Markdown, yaml and heatmap."""
    rows = trial_rows(results, swept)
    best = choose_best(rows)
    markdown = markdown_report(rows, best, model)
    files = {"csv": experiment_dir / "trials.csv", "markdown": experiment_dir / "trials.md"}
    write_csv(files["csv"], [tests_of_chosen_only(row, best) for row in rows])
    write_text(files["markdown"], markdown)
    best_config = None
    if best is not None:
        chosen = next(result for result in results if Path(result.path).name == best["trial"])
        best_config = chosen_config(chosen.config, swept, model)
        files["best_config"] = experiment_dir / "best_config.yaml"
        write_best_config(files["best_config"], best_config, best, chosen.config[SETUP], len(rows))
    plotted = heatmap_rows(rows, swept)
    if plotted:
        files["heatmap"] = experiment_dir / "valid_ndcg10_heatmap.png"
        write_heatmap(files["heatmap"], plotted, swept,
                      f"{model} on {dataset}: valid NDCG@10" if dataset else f"{model}: valid NDCG@10",
                      chosen=best)
    print(summary(markdown, rows, files, experiment_dir), flush=True)
    return TuneResult(experiment_dir, rows, best, best_config, files)


def trial_rows(results, swept: list[str]) -> list[dict]:
    """One row per trial: swept values, valid and test metrics, epochs, wall time, status, error."""
    metric_columns = _metric_columns(results)
    rows = []
    for result in sorted(results, key=lambda result: Path(result.path).name):  # grid order
        metrics = result.metrics or {}
        row = {"trial": Path(result.path).name, "status": _status(result)}
        row.update({key: (result.config or {}).get(key) for key in swept})  # none: never started
        row.update({column: metrics.get(column, math.nan) for column in metric_columns})
        row.update({
            "epochs": metrics.get("epoch", 0),
            "wall_s": metrics.get("time_total_s", math.nan),
            "checkpoint": metrics.get("checkpoint"),
            "trial_dir": result.path,
            "error": _short_error(result.error),
        })
        rows.append(row)
    return rows


def _metric_columns(results) -> list[str]:
    """``valid_*`` then ``test_*`` columns, as the trials reported them (``SELECTION`` first)."""
    names = dict.fromkeys([SELECTION])
    for result in results:
        names.update(dict.fromkeys(key for key in result.metrics or {}
                                   if key.startswith(("valid_", "test_"))))
    return sorted(names, key=lambda name: (not name.startswith("valid_"), name != SELECTION))


def _status(result) -> str:
    """completed (tested), stopped early (by --asha: Tune marks that result done), error, or
    unfinished (interrupted or never started: ``--resume`` runs it)."""
    metrics = result.metrics or {}
    if result.error is not None:
        return "error"
    if metrics.get("tested"):
        return "completed"
    return "stopped early" if metrics.get("done") else "unfinished"


def _short_error(error) -> str | None:
    """The exception's last line (``ValueError: ...``); the trial's error.txt has the traceback."""
    if error is None:
        return None
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()]
    return next((line for line in reversed(lines) if line), type(error).__name__)


def choose_best(rows: list[dict]) -> dict | None:
    """The completed trial with the highest valid NDCG@10; test metrics play no part."""
    candidates = [row for row in rows if row["status"] == "completed"
                  and math.isfinite(row[SELECTION])]
    return max(candidates, key=lambda row: row[SELECTION], default=None)


def tests_of_chosen_only(row: dict, best: dict | None) -> dict:
    """``row`` with its test metrics blanked unless it is the chosen trial: the sweep reads the
    test set for its choice only (each trial's own result.json keeps what it measured)."""
    if best is not None and row["trial"] == best["trial"]:
        return row
    return {key: (math.nan if key.startswith("test_") else value) for key, value in row.items()}


def chosen_config(trial_config: dict, swept: list[str], model: str) -> dict:
    """What the chosen trial ran with: the shared fixed settings plus its swept values, in the
    model's own keys, as plain yaml values."""
    chosen = model_settings(model, {key: trial_config[key] for key in swept})
    merged = {**trial_config[SETUP]["fixed"], **chosen}
    return {key: value.item() if hasattr(value, "item") else value for key, value in merged.items()}


def write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)


def markdown_report(rows: list[dict], best: dict | None, model: str) -> str:
    """Trials ranked by valid NDCG@10, without test columns; the chosen one's test metrics are
    read after the choice and stated once, under the table's title."""
    from tabulate import tabulate

    ranked = sorted(rows, key=lambda row: -row[SELECTION] if math.isfinite(row[SELECTION])
                    else math.inf)
    columns = [column for column in rows[0] if column not in MARKDOWN_HIDDEN
               and not column.startswith("test_")] if rows else []
    body = [[_cell(row[column]) for column in columns] for row in ranked]
    lines = [f"# {model}: {len(rows)} trials, chosen on valid NDCG@10", ""]
    if best is None:
        lines.append("No trial completed; nothing was chosen.")
    else:
        tests = ", ".join(f"{key[5:]} {best[key]:.4f}" for key in best if key.startswith("test_"))
        lines.append(f"Chosen: `{best['trial']}` (valid NDCG@10 {best[SELECTION]:.4f}); "
                     f"its test metrics: {tests}.")
    lines += ["", tabulate(body, headers=columns, tablefmt="github", floatfmt=".4f",
                           missingval=""), ""]
    return "\n".join(lines)


def _cell(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def write_best_config(path: Path, config: dict, best: dict, setup: dict, n_trials: int) -> None:
    """A yaml that ``run_recbole_ml.py --config_files`` accepts (after the sweep's own files)."""
    files = " ".join(setup["config_files"] + [str(path)])
    header = (f"# Best of {n_trials} trials ({best['trial']}), valid NDCG@10 "
              f"{best[SELECTION]:.4f}. Reproduce with:\n"
              f"#   python run_recbole_ml.py --model={setup['model']} "
              f"--dataset={setup['dataset']} --config_files='{files}'\n")
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        yaml.safe_dump(config, handle, sort_keys=False, default_flow_style=False)


def heatmap_rows(rows: list[dict], swept: list[str]) -> list[dict]:
    """Trials with a place on the learning rate x embedding size grid (none unless both are swept;
    a trial that never started has no values)."""
    if not {"learning_rate", EMBEDDING_SIZE} <= set(swept):
        return []
    return [row for row in rows
            if row["learning_rate"] is not None and row[EMBEDDING_SIZE] is not None]


def write_heatmap(path: Path, rows: list[dict], swept: list[str], title: str,
                  chosen: dict | None = None) -> None:
    """Valid NDCG@10 over learning rate x embedding size (best over any other swept axis), the
    ``chosen`` trial's cell outlined."""
    import numpy as np
    import pandas as pd

    from recbole_microlens.report import style

    frame = pd.DataFrame(rows)
    grid = frame.pivot_table(index=EMBEDDING_SIZE, columns="learning_rate", values=SELECTION,
                             aggfunc="max", dropna=False)
    grid = grid.reindex(index=sorted(frame[EMBEDDING_SIZE].unique()),
                        columns=sorted(frame["learning_rate"].unique()))
    values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
    others = [key for key in swept if key not in ("learning_rate", EMBEDDING_SIZE)]
    figure, (axes,) = style.figure(1.3 * values.shape[1] + 2.8, 0.7 * values.shape[0] + 2.2)
    image = axes.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(values.filled(np.nan)):
        dark_cell = not np.isnan(value) and value < values.mean()  # failed cells stay blank
        axes.text(j, i, style.NOT_AVAILABLE if np.isnan(value) else f"{value:.4f}", ha="center",
                  va="center", fontsize=style.FONT["note"] + 1,
                  color="white" if dark_cell else "black")
    if chosen is not None and chosen["learning_rate"] in set(grid.columns) \
            and chosen[EMBEDDING_SIZE] in set(grid.index):
        style.mark_cell(axes, list(grid.columns).index(chosen["learning_rate"]),
                        list(grid.index).index(chosen[EMBEDDING_SIZE]))
    axes.set_xticks(range(len(grid.columns)), [f"{lr:g}" for lr in grid.columns])
    axes.set_yticks(range(len(grid.index)), [str(size) for size in grid.index])
    style.labels(axes, "learning rate", "embedding size",
                 title + (f" (best over {', '.join(others)})" if others else ""))
    figure.colorbar(image, ax=axes, label="valid NDCG@10")
    style.save(figure, path)


def summary(markdown: str, rows: list[dict], files: dict, experiment_dir: Path) -> str:
    lines = [markdown]
    if any(row["status"] == "unfinished" for row in rows):
        lines.append(f"Some trials did not finish; continue with --resume "
                     f"(--tune_dir={experiment_dir.parent}).")
    lines += [f"wrote {kind}: {path}" for kind, path in files.items()]
    return "\n".join(lines)
