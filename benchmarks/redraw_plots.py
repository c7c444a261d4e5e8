"""Redraw the committed figures under benchmarks/plots/ from the numbers results/ publishes.

    python -m benchmarks.redraw_plots            # rewrites the PNGs in place
    python -m benchmarks.redraw_plots --check    # only checks that every table below parses

Where the numbers come from: the benchmark scripts draw these figures from their result files
(``benchmarks/out/...``), which are not kept (``benchmarks/out/`` is gitignored) and are not on
the machine where the figures were restyled. Every number a figure shows is also printed in a
table of a results page (``results/*.md``), so this script reads those tables (found by their
header row, whichever page holds it; nothing typed in by hand) and draws them with the report's plotting code (``recbole_microlens.report``),
the same functions the benchmark scripts call. The paper's markers come from
``properties/reference/paper_table2.yaml``, as in the report. Two consequences:

* the tables print 4 decimals, so a ratio panel recomputes each ratio from rounded HR@10 values
  (group 2 of SASRecID+T: 0.0046 / 0.0005 = 9.2, where the table's ratio column, from the
  unrounded values, says 9.33); bars are exact to the table's precision;
* the Warm-20 and Warm-50 popularity figures of the Warm-N study (``studies_50k/popularity-
  microlens-50k-warm{20,50}.png``) have no published per-group table, so they cannot be
  redrawn from published numbers and were removed; rerun ``benchmarks/studies_50k.py`` to draw
  them from fresh result files.

All runs are single-seed (no error bars).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import HERE, ROOT

RESULTS = ROOT / "results"
PLOTS = HERE / "plots"

METRIC_COLUMNS = {"HR@10": "hit@10", "NDCG@10": "ndcg@10", "HR@20": "hit@20", "NDCG@20": "ndcg@20"}
STUDY_DATASETS = {"microlens-50k": "microlens-50k", "Warm-20": "microlens-50k-warm20",
                  "Warm-50": "microlens-50k-warm50"}


def published_text() -> str:
    """Every results page, one after another: a table is found by its header wherever it is."""
    return "\n\n".join(page.read_text(encoding="utf-8") for page in sorted(RESULTS.rglob("*.md")))


def markdown_table(text: str, header_start: str) -> list[dict[str, str]]:
    """The rows (header -> cell, ``**`` stripped) of the first table whose header row starts with
    ``header_start``; an error naming the header when the results pages have no such table."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.replace(" ", "").startswith(header_start.replace(" ", ""))), None)
    if start is None:
        raise SystemExit(f"{RESULTS}: no table whose header starts with {header_start!r}")
    split = lambda line: [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
    headers = split(lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(headers, split(line))))
    return rows


def number(cell: str) -> float | None:
    """A table cell as a number ("3,820" -> 3820.0); empty or "-" -> None."""
    cell = cell.replace(",", "").strip()
    return None if cell in ("", "-") else float(cell)


def popularity_groups(rows: list[dict], run_column: str) -> dict:
    """One run's ``by_popularity`` as a result file holds it, from a per-group table."""
    groups = {}
    for row in rows:
        low, high = row[next(k for k in row if k.startswith("train interactions"))].split("-")
        groups[row["group"]] = {"hit@10": number(row[run_column]),
                                "n_users": int(number(row["test users"])),
                                "items": int(number(row["items"])),
                                "train_count_min": int(low), "train_count_max": int(high)}
    return groups


def summary(name: str, model: str, dataset: str = "microlens-50k", *, test=None,
            by_popularity=None, item_tower: str = "id", side_features=(), warm: int = 0):
    from recbole_microlens.report import RunSummary

    return RunSummary(path=RESULTS, model=model, dataset=dataset,
                      sequential=not model.startswith("DSSM"),
                      item_tower=item_tower, item_encoder=None, finetune=None,
                      side_features=tuple(side_features), warm=warm, test=test or {},
                      by_popularity=by_popularity, name=name)


def title_content(text: str) -> list:
    """ID SASRec, SASRecID+T and frozen titles (d=128) by popularity group, unique candidates and
    right padding (studies.md)."""
    rows = markdown_table(text, "| group | items | train interactions/item | test users | ID SASRec "
                                "| SASRecID+T | titles, frozen |")
    runs = [("ID SASRec", "ID SASRec", "SASRec", "id"),  # name (title_content_50k.ROWS), column
            ("SASRecID+T", "SASRecID+T", "SASRecIDV", "id+features"),
            ("titles, MiniLM frozen", "titles, frozen", "SASRecV", "encoder")]
    return [summary(name, model, item_tower=tower, by_popularity=popularity_groups(rows, column))
            for name, column, model, tower in runs]


# a column of the current-defaults content table -> (its run's name, class, item tower)
CONTENT_RUNS = {"ID SASRec, current defaults": ("ID SASRec", "SASRec", "id"),
                "SASRecID+T": ("SASRecID+T", "SASRecIDV", "id+features"),
                "titles, frozen": ("titles, MiniLM frozen", "SASRecV", "encoder"),
                "titles, top-1": ("titles, MiniLM top-1", "SASRecV", "encoder"),
                "titles, top-2": ("titles, MiniLM top-2", "SASRecV", "encoder"),
                "titles, full": ("titles, MiniLM full", "SASRecV", "encoder")}


def title_content_current(text: str) -> list:
    """The content rows under SASRec's current defaults (microlens-50k.md), frozen and
    fine-tuned, by popularity group: every run column the table has, ID SASRec first."""
    rows = markdown_table(text, "| group | items | train interactions/item | test users "
                                "| ID SASRec, current defaults |")
    columns = [column for column in rows[0] if column in CONTENT_RUNS]
    return [summary(CONTENT_RUNS[column][0], CONTENT_RUNS[column][1],
                    item_tower=CONTENT_RUNS[column][2],
                    by_popularity=popularity_groups(rows, column))
            for column in columns]


def title_features(text: str) -> dict[str, list]:
    """SASRecID+T over SASRecID and DSSMID+T over DSSM, by popularity group. The
    table has two "ratio" columns; the per-run columns are what the figures need."""
    rows = markdown_table(text, "| group | items | train interactions / item | test users | SASRecID")
    pairs = {"SASRecID+T": ("SASRecID", "SASRec", "SASRecIDV"),
             "DSSMID+T": ("DSSM", "DSSM", "DSSMIDV")}
    return {with_titles: [summary(id_only, id_model, by_popularity=popularity_groups(rows, id_only)),
                          summary(with_titles, titles_model, item_tower="id+features",
                                  by_popularity=popularity_groups(rows, with_titles))]
            for with_titles, (id_only, id_model, titles_model) in pairs.items()}


def studies(text: str) -> tuple[list, list]:
    """The Warm-N and side-feature runs' test metrics, and SASRec / SASRecID+Pop by group."""
    overall = []
    for row in markdown_table(text, "| model | dataset | HR@10 | NDCG@10 | HR@20 | NDCG@20 | paper HR@10"):
        dataset = STUDY_DATASETS[row["dataset"]]
        warm = int(dataset.rpartition("warm")[2]) if "warm" in dataset else 0
        side = ("pop_bin",) if row["model"] == "SASRecID+Pop" else ()
        test = {key: number(row[column]) for column, key in METRIC_COLUMNS.items()}
        overall.append(summary(row["model"], "SASRecSide" if side else "SASRec", dataset,
                               test=test, item_tower="id+side" if side else "id",
                               side_features=side, warm=warm))
    rows = markdown_table(text, "| group | items | train interactions / item | test users | SASRec | SASRecID+Pop")
    groups = [summary("SASRec", "SASRec", by_popularity=popularity_groups(rows, "SASRec")),
              summary("SASRecID+Pop", "SASRecSide", item_tower="id+side", side_features=("pop_bin",),
                      by_popularity=popularity_groups(rows, "SASRecID+Pop"))]
    return overall, groups


def tune_trials(text: str) -> list[dict]:
    """The Ray Tune sweep's trials as tune/outputs.py's rows."""
    from recbole_microlens.tune.space import EMBEDDING_SIZE, SELECTION

    return [{"trial": f"lr{row['learning rate']}_d{row['embedding size']}", "status": "completed",
             "learning_rate": number(row["learning rate"]),
             EMBEDDING_SIZE: int(number(row["embedding size"])),
             SELECTION: number(row["valid NDCG@10"])}
            for row in markdown_table(text, "| learning rate | embedding size | valid NDCG@10")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="parse the tables, draw nothing")
    parser.add_argument("--out", type=Path, default=PLOTS, help=f"default: {PLOTS}")
    args = parser.parse_args(argv)
    text = published_text()
    content, current, features, (overall, study_groups), trials = (
        title_content(text), title_content_current(text), title_features(text), studies(text),
        tune_trials(text))
    if args.check:
        print("every table parses")
        return
    from recbole_microlens.report import load_reference, plot_overall, plot_popularity
    from recbole_microlens.tune.outputs import choose_best, write_heatmap

    out = args.out
    drawn = [plot_popularity(content, content[0], out / "title_content_50k" / "popularity.png"),
             plot_popularity(current, current[0],
                             out / "title_content_50k" / "popularity-current-defaults.png")]
    drawn += [plot_popularity(runs, runs[0], out / "title_features_50k" / name / "popularity.png")
              for name, runs in features.items()]
    drawn.append(plot_overall(overall, load_reference("paper_table2"),
                              out / "studies_50k" / "overall.png"))
    drawn.append(plot_popularity(study_groups, study_groups[0],
                                 out / "studies_50k" / "popularity-microlens-50k.png"))
    heatmap = out / "tune_sasrec_50k_heatmap.png"
    write_heatmap(heatmap, trials, ["learning_rate", "embedding_size"],
                  "SASRec on microlens-50k: valid NDCG@10", chosen=choose_best(trials))
    for path in drawn + [heatmap]:
        print(f"drew {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
