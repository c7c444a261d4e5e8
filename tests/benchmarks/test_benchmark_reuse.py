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
