"""Reports from result files: Table 2 layout, paper overlay, popularity groups, encoder sweep."""
import json

import pytest

from recbole_microlens.cli import commands as cli
from recbole_microlens.report import load_reference, load_summaries, results_table, write_report

METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def groups(*hits):
    """A popularity breakdown with the given HR@10 per group."""
    return {str(g): {"hit@10": hit, "ndcg@10": hit / 2, "hit@20": hit, "ndcg@20": hit / 2,
                     "n_users": 10 * g, "items": 4, "train_count_min": g, "train_count_max": g + 1}
            for g, hit in enumerate(hits, start=1)}


def result(model, values, dataset="ml", by_popularity=None, model_type="SEQUENTIAL", **config):
    test = dict(zip(METRICS, values))
    if by_popularity:
        test["by_popularity"] = by_popularity
    return {"model": model, "dataset": dataset, "valid": dict(test), "test": test,
            "config": {"MODEL_TYPE": f"ModelType.{model_type}", "item_tower": "id", **config}}


def video(encoder, finetune, values, **extra):
    return result("SASRecV", values, item_tower="encoder", item_encoder=encoder,
                  finetune=finetune, **extra)


RESULTS = {
    "sasrec.json": result("SASRec", (0.1, 0.05, 0.2, 0.07), by_popularity=groups(0.1, 0.2, 0.4)),
    "video_top.json": video("r3d-r18", "top", (0.12, 0.06, 0.21, 0.08),
                            by_popularity=groups(0.3, 0.3, 0.2)),
    "video_frozen.json": video("r3d-r18", "frozen", (0.04, 0.02, 0.09, 0.03)),
    "x3d_top.json": video("x3d-xs", "top", (0.07, 0.03, 0.12, 0.04)),
    "side.json": result("SASRecSide", (0.08, 0.04, 0.15, 0.05), item_tower="id+side",
                        side_features=["pop_bin"]),
    "dssm.json": result("DSSM", (0.03, 0.01, 0.05, 0.02), model_type="GENERAL"),
    "warm.json": result("SASRec", (0.2, 0.1, 0.3, 0.15), dataset="ml-warm20"),
}
# label, class, dataset, ours, paper (HR@10, NDCG@10, HR@20, NDCG@20): Table 2's class order,
# within a class the order of the files (a folder's are sorted by name)
EXPECTED_ROWS = [
    ("DSSM", "IDRec (CF)", "ml", "dssm.json", (0.0394, 0.0193, 0.0654, 0.0258)),
    ("SASRec", "IDRec (SR)", "ml", "sasrec.json", (0.0909, 0.0517, 0.1278, 0.0610)),
    ("SASRecID+Pop", "IDRec (SR)", "ml", "side.json", (0.0709, 0.0396, 0.1037, 0.0479)),
    ("SASRec", "IDRec (SR)", "ml-warm20", "warm.json", (0.1068, 0.0615, None, None)),
    ("SASRecV (r3d-r18, frozen)", "VideoRec", "ml", "video_frozen.json",
     (0.0458, 0.0256, None, None)),
    ("SASRecV (r3d-r18, top)", "VideoRec", "ml", "video_top.json", (0.0850, 0.0448, None, None)),
    ("SASRecV (x3d-xs, top)", "VideoRec", "ml", "x3d_top.json", (0.0704, 0.0357, None, None)),
]


@pytest.fixture
def result_dir(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for name, content in RESULTS.items():
        (folder / name).write_text(json.dumps(content))
    return folder


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_rows(markdown: str, first_header: str) -> list[list[str]]:
    """The body rows of the first table whose header starts with ``first_header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("|") and cells(line)[0] == first_header)
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append(cells(line))
    return body


def test_table_two_layout_with_the_papers_numbers(result_dir):
    summaries = load_summaries([result_dir])
    table = results_table(summaries, load_reference("paper_table2"))
    header = cells(table.splitlines()[0])
    assert header[:7] == ["Class", "Model", "Dataset", "HR@10", "NDCG@10", "HR@20", "NDCG@20"]
    rows = table_rows(table, "Class")
    assert len(rows) == len(EXPECTED_ROWS)
    for row, (label, model_class, dataset, name, paper) in zip(rows, EXPECTED_ROWS):
        ours = RESULTS[name]["test"]
        assert row[:3] == [model_class, label, dataset]
        assert row[3:7] == [f"{ours[m]:.4f}" for m in METRICS]
        assert row[7:] == ["" if v is None else f"{v:.4f}" for v in paper]


def test_report_files_and_figure6_ratios(result_dir, tmp_path):
    files = write_report([result_dir], tmp_path / "report", reference="paper_table2")
    assert set(files) == {"overall", "popularity", "encoders", "report"}
    for name in ("overall", "popularity", "encoders"):
        data = files[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1024
    markdown = files["report"].read_text()
    assert "ratios are HR@10 over SASRec's" in markdown
    popularity = table_rows(markdown, "Group")
    assert [row[0] for row in popularity] == ["1", "2", "3"]
    for row, base, video_hit in zip(popularity, (0.1, 0.2, 0.4), (0.3, 0.3, 0.2)):
        assert row[4:] == [f"{base:.4f}", f"{video_hit:.4f}", f"{video_hit / base:.4f}"]
    sweep = table_rows(markdown, "Model")
    assert [row[:2] for row in sweep] == [["SASRecV", "r3d-r18"], ["SASRecV", "x3d-xs"]]
    assert sweep[0][2:6] == ["0.0400", "0.0200", "0.1200", "0.0600"]  # frozen, then top
    assert sweep[1][2:6] == ["", "", "0.0700", "0.0300"]  # x3d-xs has no frozen run
    assert sweep[0][6:] == ["0.0458", "0.0256", "0.0850", "0.0448"]  # Table 6, frozen and topT
    assert not list((tmp_path / "report").glob(".*"))  # atomic writes leave no temp files


def test_report_command(result_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["report", str(result_dir / "sasrec.json"), str(result_dir / "video_top.json"),
                     "--out", str(out), "--baseline", "SASRecV (r3d-r18, top)"]) == 0
    printed = capsys.readouterr().out
    assert (out / "report.md").read_text() in printed
    ratios = [row[-1] for row in table_rows(printed, "Group")]
    assert ratios == [f"{a / b:.4f}" for a, b in ((0.1, 0.3), (0.2, 0.3), (0.4, 0.2))]
    assert sorted(p.name for p in out.iterdir()) == ["overall.png", "popularity.png", "report.md"]
    assert cli.main(["report", str(result_dir / "sasrec.json"), "--out", str(out),
                     "--baseline", "nobody"]) == 2
    (tmp_path / "meta.json").write_text(json.dumps({"dataset": "ml"}))
    assert cli.main(["report", str(tmp_path / "meta.json"), "--out", str(out)]) == 2
    assert "not a result file" in capsys.readouterr().err


# -- what every plot says ------------------------------------------------------------------------
@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report draws, by file name."""
    from recbole_microlens.report import plots

    drawn = {}
    original = plots._save

    def save(figure, path):
        drawn[path.name] = figure
        return original(figure, path)

    monkeypatch.setattr(plots, "_save", save)
    return drawn


def _texts(axes) -> list[str]:
    return [text.get_text() for text in axes.texts]


def _title(figure) -> str:
    return " ".join([figure._suptitle.get_text() if figure._suptitle else ""]
                    + [axes.get_title() for axes in figure.axes])


def test_every_plot_names_dataset_and_metric_and_labels_its_axes(result_dir, tmp_path, figures):
    write_report([result_dir], tmp_path / "report", reference="paper_table2")
    assert set(figures) == {"overall.png", "popularity.png", "encoders.png"}
    for name, figure in figures.items():
        title = _title(figure)
        assert "ml" in title and ("HR@10" in title or "NDCG@10" in title), (name, title)
        for axes in figure.axes:
            assert axes.get_xlabel() and axes.get_ylabel(), name
            assert axes.patches, f"{name}: an empty panel"
    # the paper's numbers are MicroLens-100K's, not this dataset's: the legend says so
    legend = [t.get_text() for t in figures["overall.png"].axes[0].get_legend().get_texts()]
    assert "paper, on MicroLens-100K (another dataset)" in legend
    # x3d-xs has no frozen run: "n/a", not an empty bar that reads as zero
    assert _texts(figures["encoders.png"].axes[0]).count("n/a") == 1


def test_one_run_gets_one_popularity_panel_and_uncomputable_ratios_say_na(tmp_path, figures):
    from recbole_microlens.report import plot_popularity

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(result("SASRec", (0.1, 0.05, 0.2, 0.07),
                                                     by_popularity=groups(0.0, 0.2, 0.4))))
    summaries = load_summaries([folder / "a.json"])
    plot_popularity(summaries, summaries[0], tmp_path / "one.png")
    assert len(figures["one.png"].axes) == 1  # no empty right panel
    (folder / "b.json").write_text(json.dumps(video("x3d-xs", "top", (0.1, 0.05, 0.2, 0.07),
                                                    by_popularity=groups(0.1, 0.1, 0.1))))
    summaries = load_summaries([folder / "a.json", folder / "b.json"])
    plot_popularity(summaries, summaries[0], tmp_path / "two.png")
    left, right = figures["two.png"].axes
    assert right.get_ylabel() == "HR@10 / SASRec's HR@10"
    assert _texts(right) == ["n/a"]  # group 1: the baseline's HR@10 is 0
    assert "ml: test HR@10 by training popularity" in _title(figures["two.png"])


def test_paper_numbers_on_their_own_dataset_are_just_paper():
    from recbole_microlens.report import paper_marker_label

    reference = load_reference("paper_table2")
    assert paper_marker_label(reference, ["microlens-100k"]) == "paper"
    assert paper_marker_label(reference, ["microlens-50k"]) == \
        "paper, on MicroLens-100K (another dataset)"


# -- plots a paper can use ------------------------------------------------------------------------
def _write(folder, **results):
    folder.mkdir(exist_ok=True)
    for name, content in results.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
    return [folder / f"{name}.json" for name in results]


def _bar_series(axes) -> list:
    from matplotlib.container import BarContainer

    return [container for container in axes.containers if isinstance(container, BarContainer)]


def _bar_colours(axes) -> dict[str, tuple]:
    """Legend label -> the face colour of that series' bars."""
    return {bars.get_label(): bars.patches[0].get_facecolor() for bars in _bar_series(axes)}


def test_two_runs_of_one_model_get_distinct_labels(tmp_path):
    paths = _write(tmp_path / "r", a=result("SASRec", (0.1, 0.05, 0.2, 0.07), learning_rate=0.001),
                   b=result("SASRec", (0.2, 0.1, 0.3, 0.15), learning_rate=0.01),
                   c=result("SASRec", (0.3, 0.1, 0.3, 0.15), learning_rate=0.01))
    assert [s.label for s in load_summaries(paths)] == [
        "SASRec (learning_rate=0.001)", "SASRec (learning_rate=0.01) [b]",
        "SASRec (learning_rate=0.01) [c]"]  # equal settings, no seeds: the files tell them apart
    two = load_summaries(paths[:2])
    assert [s.label for s in two] == ["SASRec (learning_rate=0.001)", "SASRec (learning_rate=0.01)"]


def test_runs_over_seeds_become_a_mean_with_error_bars(tmp_path, figures):
    from recbole_microlens.report import plot_overall, plot_popularity

    paths = _write(tmp_path / "r", **{
        f"s{seed}": {**result("SASRec", (hit, hit / 2, hit, hit / 2),
                              by_popularity=groups(hit, hit, hit), seed=seed), "seed": seed}
        for seed, hit in ((1, 0.10), (2, 0.12), (3, 0.14))},
        video=video("r3d-r18", "top", (0.2, 0.1, 0.3, 0.15), by_popularity=groups(0.2, 0.0, 0.2)))
    summaries = load_summaries(paths)
    sasrec = summaries[0]
    assert len(summaries) == 2 and sasrec.label == "SASRec" and sasrec.seeds == (1, 2, 3)
    assert sasrec.test["hit@10"] == pytest.approx(0.12)
    assert sasrec.test_std["hit@10"] == pytest.approx(0.02)  # sample std over the seeds
    table = results_table(summaries)
    row = table_rows(table, "Class")[0]
    assert row[1:3] == ["SASRec", "0.1200 ± 0.0200"] and row[-1] == "3"
    plot_overall(summaries, None, tmp_path / "overall.png")
    plot_popularity(summaries, sasrec, tmp_path / "popularity.png")
    bars = _bar_series(figures["overall.png"].axes[0])
    assert len(bars) == 2 and all(series.errorbar is not None for series in bars)
    left = figures["popularity.png"].axes[0]
    sasrec_bars = next(c for c in _bar_series(left) if c.get_label() == "SASRec")
    error_lines = sasrec_bars.errorbar.lines[2][0].get_segments()
    assert [abs(top[1] - bottom[1]) for bottom, top in error_lines] == \
        pytest.approx([0.04] * 3)  # +- one std (0.02) at each group


def test_popularity_plot_colours_log_ratios_group_sizes_and_zero_versus_na(tmp_path, figures):
    from recbole_microlens.report import plot_popularity

    paths = _write(tmp_path / "r",
                   base=result("SASRec", (0.1, 0.05, 0.2, 0.07), by_popularity=groups(0.0, 0.1, 0.4)),
                   ids=result("SASRecIDV", (0.1, 0.05, 0.2, 0.07), by_popularity=groups(0.1, 0.0, 3.1),
                              item_tower="id+features", features_file="features/minilm.npy"),
                   text=video("minilm", "frozen", (0.1, 0.05, 0.2, 0.07),
                              by_popularity=groups(0.2, 0.2, 0.04)))
    summaries = load_summaries(paths)
    assert summaries[1].label == "SASRecID+minilm"  # the features it fuses, not "SASRecIDV"
    plot_popularity(summaries, summaries[0], tmp_path / "popularity.png")
    figure = figures["popularity.png"]
    left, right = figure.axes
    left_colours, right_colours = _bar_colours(left), _bar_colours(right)
    assert set(right_colours) == {"SASRecID+minilm", "SASRecV (minilm, frozen)"}
    for label, colour in right_colours.items():
        assert left_colours[label] == colour  # a run keeps its colour across panels
    assert right.get_yscale() == "log" and left.get_yscale() == "linear"
    ticks = [tick.get_text() for tick in right.get_xticklabels()]
    assert ticks == ["1\n10 users", "2\n20 users", "3\n30 users"]  # users per group shown
    notes = {text.get_text(): text for text in right.texts}
    assert sorted(t.get_text() for t in right.texts) == ["0", "n/a", "n/a"]  # ratio 0 vs base 0
    assert notes["0"].get_color() != notes["n/a"].get_color()  # the run's colour, not grey
    assert notes["0"].get_fontweight() == "bold"
    assert "0" in _texts(left)  # a zero HR@10 is written, not an invisible bar
    figure.canvas.draw()
    canvas = figure.bbox
    for text in right.texts + left.texts:
        assert text.get_fontsize() >= 8 and text.get_rotation() == 0
        box = text.get_window_extent()
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0  # not clipped


def test_the_committed_figures_redraw_from_the_tables_the_results_pages_publish(tmp_path, figures):
    """benchmarks/redraw_plots.py: each figure's numbers are read from results/*.md's tables."""
    from benchmarks import redraw_plots

    text = redraw_plots.published_text()
    content = redraw_plots.title_content(text)
    assert [s.label for s in content] == ["ID SASRec", "SASRecID+T", "titles, MiniLM frozen"]
    assert [s.by_popularity["1"]["hit@10"] for s in content] == [0.0004, 0.0047, 0.0122]
    assert content[0].by_popularity["5"]["n_users"] == 16675
    current = redraw_plots.title_content_current(text)  # microlens-50k.md, current defaults
    assert [s.label for s in current][:4] == ["ID SASRec", "SASRecID+T", "titles, MiniLM frozen",
                                              "titles, MiniLM top-1"]
    assert [s.by_popularity["1"]["hit@10"] for s in current][:4] == [0.0008, 0.0059, 0.0149, 0.0159]
    overall, _ = redraw_plots.studies(text)
    assert [(s.dataset, s.warm, s.test["hit@10"]) for s in overall][1:3] == [
        ("microlens-50k-warm20", 20, 0.0553), ("microlens-50k-warm50", 50, 0.0744)]
    features = redraw_plots.title_features(text)
    assert [s.label for s in features["SASRecID+T"]] == ["SASRecID", "SASRecID+T"]
    redraw_plots.main(["--out", str(tmp_path)])
    assert (tmp_path / "title_features_50k" / "SASRecID+T" / "popularity.png").is_file()
    assert (tmp_path / "title_content_50k" / "popularity-current-defaults.png").is_file()
    legend = [t.get_text() for t in figures["popularity.png"].axes[0].get_legend().get_texts()]
    assert legend == ["DSSM", "DSSMID+T"]  # the last popularity.png drawn: paper names
    assert figures["overall.png"].axes[0].get_ylabel()
    assert (tmp_path / "tune_sasrec_50k_heatmap.png").read_bytes().startswith(PNG_SIGNATURE)
