"""Frame-store build cost on MicroLens-like videos: bytes per item, throughput, what seeking saves.

Generates ``--clips`` H.264 1280x720 clips of 10-30 s at 30 or 60 fps into benchmarks/out/ (kept
for reruns), then builds the default frame store (5 frames, interval 1, 224x224) three times:
seeking with 1 and 2 worker processes, and decoding from the start with 1 worker.

    python -m benchmarks.frame_store [--clips 12]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.common import OUT as BENCHMARKS_OUT
from recbole_microlens.data.stores.media import FrameSpec, build_frame_store

OUT = BENCHMARKS_OUT / "frame_store"
WIDTH, HEIGHT = 1280, 720
SECONDS = (10, 30)
FRAME_RATES = (30, 60)
GOP = 250  # x264's own default keyint: a keyframe every 8.3 s at 30 fps, 4.2 s at 60 fps
PRESET = "superfast"  # CABAC and B-frames like real uploads, fast enough to generate here
PAN = (400, 200)  # the background is this much larger than a frame, and pans over it
NOISE_LAYERS, GRAIN = 7, 16  # cycling grain: a bitrate like real 720p uploads, not a still

FLOAT32_BYTES = 4
# (label, workers, seek)
RUNS = (("seek, 1 worker", 1, True), ("seek, 2 workers", 2, True),
        ("from start, 1 worker", 1, False))


def make_clips(folder: Path, n_clips: int) -> list[dict]:
    """The clips' (seconds, fps), generated once: a manifest marks a finished set."""
    manifest = folder / "clips.json"
    plan = [{"token": str(i + 1), "seconds": float(seconds), "fps": FRAME_RATES[i % 2]}
            for i, seconds in enumerate(np.linspace(*SECONDS, n_clips).round(1))]
    recipe = {"plan": plan, "preset": PRESET, "gop": GOP, "grain": GRAIN}
    if manifest.is_file() and json.loads(manifest.read_text()) == recipe:
        return plan
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    background, grain = _textures(rng)
    for clip in plan:
        started = time.perf_counter()
        _write_clip(folder / f"{clip['token']}.mp4", clip["seconds"], clip["fps"], background,
                    grain)
        print(f"  clip {clip['token']}: {clip['seconds']} s at {clip['fps']} fps "
              f"({time.perf_counter() - started:.1f} s to encode)", flush=True)
    manifest.write_text(json.dumps(recipe))
    return plan


def _textures(rng) -> tuple[np.ndarray, np.ndarray]:
    """A smooth coloured background larger than the frame, and a few layers of grain."""
    y, x = np.mgrid[0:HEIGHT + PAN[1], 0:WIDTH + PAN[0]]
    background = (127 + 60 * np.sin(x / 37.0)[..., None] * np.array([1.0, 0.5, -0.3])
                  + 50 * np.cos(y / 23.0 + x / 91.0)[..., None] * np.array([-0.4, 1.0, 0.6]))
    grain = rng.integers(0, GRAIN, (NOISE_LAYERS, HEIGHT, WIDTH, 3), dtype=np.uint8)
    return background.clip(0, 255 - GRAIN).astype(np.uint8), grain


def _write_clip(path: Path, seconds: float, fps: int, background, grain) -> None:
    n_frames = round(seconds * fps)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": PRESET})
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = WIDTH, HEIGHT, "yuv420p", GOP
        for index in range(n_frames):
            dx = index * PAN[0] // n_frames
            dy = round(PAN[1] / 2 * (1 + np.sin(index / fps)))
            pixels = background[dy:dy + HEIGHT, dx:dx + WIDTH] + grain[index % NOISE_LAYERS]
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def timed_build(videos: Path, tokens: list[str], root: Path, workers: int, seek: bool,
                repeats: int) -> dict:
    """Best wall time of ``repeats`` fresh builds (the machine may be shared), and CPU time."""
    walls, cpus = [], []
    for _ in range(repeats):
        shutil.rmtree(root, ignore_errors=True)
        cpu, started = cpu_seconds(), time.perf_counter()
        report = build_frame_store(videos, tokens, root, FrameSpec(), workers=workers, seek=seek,
                                   progress=False)
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - cpu)
    return {"wall": min(walls), "cpu": min(cpus), "report": report}


def cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the pool's workers)."""
    usages = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    videos = OUT / "videos"
    print(f"clips in {videos}", flush=True)
    plan = make_clips(videos, args.clips)
    tokens = [clip["token"] for clip in plan]
    video_frames = sum(round(clip["seconds"] * clip["fps"]) for clip in plan)
    load = os.getloadavg()[0]
    results = {label: timed_build(videos, tokens, OUT / f"store_{workers}_{seek}", workers, seek,
                                  args.repeats)
               for label, workers, seek in RUNS}
    print_table(plan, video_frames, results, args.repeats, load)


def print_table(plan, video_frames, results, repeats: int, load: float) -> None:
    spec = FrameSpec()
    row_bytes = int(np.prod(spec.row_shape))
    n = len(plan)
    reports = {label: result["report"] for label, result in results.items()}
    stores = {(report.folder / "frames.u8").read_bytes() for report in reports.values()}
    megabytes = sum((OUT / "videos" / f"{clip['token']}.mp4").stat().st_size for clip in plan) / 1e6
    seconds = sum(clip["seconds"] for clip in plan)
    print(f"\n{n} clips, {WIDTH}x{HEIGHT} H.264 ({PRESET}, keyint {GOP}), "
          f"{SECONDS[0]}-{SECONDS[1]} s at {'/'.join(map(str, FRAME_RATES))} fps: "
          f"{video_frames} frames, {megabytes:.1f} MB ({megabytes * 8 / seconds:.1f} Mbit/s)")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} at start; wall time = best of {repeats}")
    print(f"store row: {' x '.join(map(str, spec.row_shape))} uint8 = {row_bytes:,} B per video "
          f"(float32: {row_bytes * FLOAT32_BYTES:,} B, {FLOAT32_BYTES}x more)\n")
    print("| run | workers | wall s | videos/s | videos/s per worker | CPU s per video "
          "| frames decoded per video |")
    print("|---|---|---|---|---|---|---|")
    for label, workers, _ in RUNS:
        result = results[label]
        print(f"| {label} | {workers} | {result['wall']:.2f} | {n / result['wall']:.2f} | "
              f"{n / result['wall'] / workers:.2f} | {result['cpu'] / n:.3f} | "
              f"{result['report'].frames_decoded / n:.0f} |")
    seek, start = results["seek, 1 worker"], results["from start, 1 worker"]
    print(f"\nseeking vs decoding from the start (1 worker): {start['wall'] / seek['wall']:.1f}x "
          f"less wall time, {start['cpu'] / seek['cpu']:.1f}x less CPU, "
          f"{start['report'].frames_decoded / seek['report'].frames_decoded:.1f}x fewer frames "
          f"decoded")
    print(f"2 workers vs 1 (seeking): {seek['wall'] / results['seek, 2 workers']['wall']:.2f}x")
    print(f"all three stores byte-identical: {'yes' if len(stores) == 1 else 'NO'}")
    print(f"statuses: {seek['report'].counts}")


if __name__ == "__main__":
    main()
