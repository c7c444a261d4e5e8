"""One all-MiniLM-L6-v2 layer alone, forward and backward: the arithmetic floor of a top-1 step.

    python -m benchmarks.bare_minilm_layer --tokens 56206 --items 2086 --repeats 5

A check on ``text_topk_profile.py --json`` that shares none of its code: transformers' own
``BertLayer``, MiniLM's last (384 wide, 1536 FFN, 12 heads, its real weights), in train mode (dropout
on, torch's fused attention as the project's default), over ``--items`` rows holding ``--tokens`` tokens in all, with an all-ones attention mask;
prints the median seconds of ``--repeats`` forward + backward passes after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertLayer


def minilm_last_layer(attention: str) -> BertLayer:
    """MiniLM's last layer with its real weights (the values matter on a CPU: tiny ones can be
    slow) when the weights package is installed, else a random layer of its shape."""
    try:
        from recbole_microlens.data.stores.titles import minilm_folder

        folder = minilm_folder()
    except ImportError:
        folder = None
    if folder is None:
        config = BertConfig(hidden_size=384, intermediate_size=1536, num_attention_heads=12)
        config._attn_implementation = attention  # how transformers picks the attention kernel
        return BertLayer(config)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False,
                                      attn_implementation=attention)
    return model.encoder.layer[-1]


def forward_backward(layer: BertLayer, hidden: torch.Tensor, chunk: int) -> torch.Tensor:
    """The layer forward over ``hidden`` in ``chunk``-row slices (0: one batch), then one
    backward through all of them, as a step runs its length-grouped chunks; returns the output.
    A BertLayer returns a tuple before transformers 5 and a tensor from 5 on."""
    rows = chunk or len(hidden)
    outputs = []
    for part in hidden.split(rows):
        result = layer(part, attention_mask=torch.zeros(len(part), 1, 1, part.shape[1]))
        outputs.append(result[0] if isinstance(result, tuple) else result)
    out = torch.cat(outputs)
    out.sum().backward()
    return out


def time_layer(tokens: int, items: int, repeats: int, attention: str, chunk: int = 0) -> list[float]:
    layer = minilm_last_layer(attention).train()
    width = -(-tokens // items)
    hidden = torch.randn(items, width, layer.output.dense.out_features)  # every token attends
    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        forward_backward(layer, hidden, chunk)
        seconds.append(time.perf_counter() - started)
    return seconds[1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, required=True, help="real tokens per step")
    parser.add_argument("--items", type=int, required=True, help="distinct titles per step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa",
                        help="sdpa: the project's default (fused_attention: true)")
    parser.add_argument("--chunk", type=int, default=0,
                        help="rows per forward, as the tower's length-grouped chunks (0: one batch)")
    args = parser.parse_args()
    seconds = time_layer(args.tokens, args.items, args.repeats, args.attention, args.chunk)
    print(json.dumps({"bare_layer_s": statistics.median(seconds), "runs_s": seconds,
                      "tokens": args.tokens, "items": args.items, "chunk": args.chunk,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
