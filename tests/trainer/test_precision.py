"""bf16 on CPU is correct or not run (issue 22): each check runs in its own interpreter, since
the kernels it exercises can corrupt the heap of the process that runs them."""
from tests.helpers import run_isolated

# A 3x3 stride-2 convolution over a 1x1 map (SlowFast's last stages on small frames): oneDNN's
# bf16 weight gradient on AVX-512 CPUs is ~1e37, NaN, or a crash. Guarded, it matches float32.
CONV_GRADIENT = """
import json, torch
from recbole_microlens.precision import bf16_safe_kernels
torch.manual_seed(0)
conv = torch.nn.Conv3d(64, 64, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
x = torch.randn(16, 64, 5, 1, 1)
conv(x).sum().backward()
reference, conv.weight.grad = conv.weight.grad.clone(), None
with bf16_safe_kernels("cpu", True):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
error = (conv.weight.grad - reference).abs().max() / reference.abs().max()
print(json.dumps({"error": float(error), "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def test_bf16_convolution_gradients_on_cpu_match_float32():
    result = run_isolated(CONV_GRADIENT)
    assert result["error"] < 0.05, result  # bf16 keeps 8 bits of mantissa; the bug gives 1e37


# The trainer keeps oneDNN off over a whole bf16 epoch on CPU: forward and backward (the
# backward pass chooses its kernels again), and back on for evaluation.
TRAINER_EPOCH = """
import json, sys, tempfile
from pathlib import Path
import torch
from tests.helpers import built_run, make_config, write_inter_file
from recbole_microlens.model import get_model
from recbole_microlens.trainer.trainer import MLTrainer

root = Path(tempfile.mkdtemp())
write_inter_file(root, "tiny", {f"u{u}": [f"i{(u + k) % 9}" for k in range(6)] for u in range(6)})
config = make_config(root, "tiny", bf16=sys.argv[1] == "True")
train, _, _ = built_run(config, model=False).splits
model = get_model("SASRec")(config, train._dataset)
seen = {"forward": set(), "backward": set()}
for module in model.modules():
    module.register_forward_hook(lambda *_: seen["forward"].add(torch.backends.mkldnn.enabled))
next(model.parameters()).register_hook(
    lambda grad: seen["backward"].add(torch.backends.mkldnn.enabled))
loss = MLTrainer(config, model)._train_epoch(train, 0)
print(json.dumps({"loss": float(loss), "after": torch.backends.mkldnn.enabled,
                  **{phase: sorted(flags) for phase, flags in seen.items()}}))
"""


def test_a_bf16_epoch_on_cpu_runs_without_onednn_forward_and_backward():
    bf16 = run_isolated(TRAINER_EPOCH, "True")
    assert bf16["forward"] == bf16["backward"] == [False] and bf16["after"] is True
    float32 = run_isolated(TRAINER_EPOCH, "False")
    assert float32["forward"] == float32["backward"] == [True]
    assert abs(bf16["loss"] - float32["loss"]) < 0.05 * abs(float32["loss"])
