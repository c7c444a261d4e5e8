"""The yaml is the only source of defaults."""
from __future__ import annotations

import pytest


# --------------------------------------------------------------------------- one title length


def test_a_text_runs_title_tensors_have_the_yaml_length(tmp_path):
    """title_max_length (overall.yaml) sizes the titles a run feeds its text encoder; the registry
    and the command line default to the same key."""
    import torch

    from recbole_microlens.cli.commands import build_parser
    from recbole_microlens.data.stores.item_inputs import ItemSource
    from recbole_microlens.encoders.factory import EncoderChoice, build_encoder_inputs
    from recbole_microlens.encoders.registry import encoder_spec
    from recbole_microlens.paths import overall_default
    from tests.helpers import make_config, write_inter_file

    folder = write_inter_file(tmp_path, "tiny", {"u1": ["1", "2", "3"], "u2": ["2", "3", "1"]})
    (folder / "tiny.item").write_text("item_id:token\n1\n2\n3\n")
    long_title = "the best speedrun of the year part two " * 12  # 96 words: cut to the length
    (folder / "tiny.titles.csv").write_text(f"item_id,title\n1,{long_title}\n2,a cat\n3,noodles\n")
    config = make_config(tmp_path, "tiny", "SASRecV", item_encoder="bert-tiny",
                         item_modality="text")
    inputs = build_encoder_inputs(EncoderChoice.from_config(config), ["[PAD]", "1", "2", "3"],
                                  ItemSource.from_config(config))
    titles = inputs(torch.tensor([1, 2]))
    assert titles["input_ids"].shape == (2, config["title_max_length"])
    assert titles["attention_mask"][0].sum() == config["title_max_length"]  # the long one, cut
    assert config["title_max_length"] == overall_default("title_max_length") == 64
    assert encoder_spec("bert-tiny").input.max_tokens == 64
    prepare = build_parser().parse_args(["prepare-media", "--dataset", "tiny"])
    assert prepare.title_max_length == 64


def test_an_encoder_override_of_the_title_length_that_disagrees_is_refused():
    from recbole_microlens.encoders.factory import check_title_length
    from recbole_microlens.errors import ConfigError

    check_title_length({}, 64)
    check_title_length({"max_tokens": 16}, 16)
    with pytest.raises(ConfigError, match="title_max_length"):
        check_title_length({"max_tokens": 16}, 64)
