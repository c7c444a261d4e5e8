#!/usr/bin/env bash
# The GPU runs, on a lent GPU machine, from the repository root, each part under 10 minutes.
# Pack first, here (python -m benchmarks.gpu_carry --part PART), then carry .gpu/PART:
#
#   bash benchmarks/gpu_run.sh titles   # title rows top-1, top-2, full (+ the ID baseline) to
#                                       # early stopping on MicroLens-50k, current defaults,
#                                       # encoder lr 1e-4, seed 2024
#   bash benchmarks/gpu_run.sh suite    # the test suite on CUDA, then gpu_videorec
#
# A part stopped by its budget (BUDGET_S, default 540 s) keeps each row's resume state under
# benchmarks/out (ignored, so it stays on a warm machine): the same command continues it.
# Results go to $OUT (the device tool's folder; default benchmarks/out/gpu): the GPU's name, the
# packages, the log and the result files, packed in one archive.
set -uo pipefail
part=${1:?usage: gpu_run.sh titles|suite [script options]}
shift  # the rest goes to the part's script (a smoke run: --dataset microlens-sample --epochs 1)
budget=${BUDGET_S:-540}
out=${OUT:-benchmarks/out/gpu}
carry=.gpu/$part
site=/tmp/recbole-microlens-site
[ -d "$carry/wheels" ] || { echo "$carry missing: run python -m benchmarks.gpu_carry --part $part here and carry it"; exit 2; }

mkdir -p "$out" "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$carry"/wheels/*.whl || exit 2
export PYTHONPATH=$site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$(nproc)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 --version
  python3 -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|numpy|pandas|transformers|recbole|av) '
} > "$out/machine.txt"
cat "$out/machine.txt"

case $part in
titles)
    python3 -m benchmarks.gpu_carry --unpack-minilm "$site" || exit 2
    timeout -s TERM "$budget" python3 -m benchmarks.title_content_50k \
        --raw-dir "$carry/microlens-50k" --rows top1 top2 full --current-defaults \
        --encoder-lr 1e-4 --plots benchmarks/out/gpu-plots "$@" 2>&1 | tee "$out/titles.log"
    status=${PIPESTATUS[0]}
    tar czf "$out/title_content.tgz" benchmarks/out/title_content benchmarks/out/gpu-plots 2>/dev/null
    ;;
suite)
    timeout -s TERM "$budget" python3 -m benchmarks.gpu_videorec \
        --raw-dir "$carry/microlens-50k" --tests "$@" 2>&1 | tee "$out/suite.log"
    status=${PIPESTATUS[0]}
    cp benchmarks/out/gpu_videorec.json benchmarks/out/gpu_tests.log "$out/" 2>/dev/null
    ;;
*)
    echo "unknown part $part (titles or suite)"; exit 2 ;;
esac
[ "$status" = 124 ] && echo "stopped at the ${budget} s budget; the same command continues"
exit "$status"
