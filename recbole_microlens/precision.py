"""bf16 that is correct on every CPU: training steps under bf16 autocast on a CPU run without
oneDNN (PyTorch's own kernels instead).

Why: on CPUs with AVX-512 (``torch.backends.cpu.get_cpu_capability() == "AVX512"``; with or
without the ``avx512_bf16`` instructions) the oneDNN 3.x bundled with torch 2.x computes the
weight gradient of a bf16 strided convolution whose padded input barely covers the kernel (a 3x3
stride-2 convolution over a 1x1 map, as SlowFast's last stages meet small frames;
``ONEDNN_VERBOSE`` names it ``jit_bf16:avx512_core_bf16,backward_weights``) out of bounds: the
gradient is ~1e37 or NaN and the heap is corrupted ("double free or corruption", a bus error).
AVX2-only CPUs use other kernels and are unaffected. PyTorch's own bf16 kernels are correct on
every shape; oneDNN stays on for float32 and for evaluation.

The backward pass picks its kernels again, so the guard must hold over forward *and* backward.
"""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def bf16_safe_kernels(device: torch.device | str, bf16: bool):
    """Around a training step or epoch (forward and backward): oneDNN off when bf16 runs on CPU."""
    if not bf16 or torch.device(device).type != "cpu":
        yield
        return
    with torch.backends.mkldnn.flags(enabled=False):
        yield
