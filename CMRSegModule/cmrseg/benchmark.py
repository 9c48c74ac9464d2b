"""Speed and memory of segmentation on this machine (``cmrseg benchmark``): a measurement, not a test.

Each configuration runs in its own process so that its peak memory (max RSS) is its own. Inputs are
synthetic phantom frames of 12 slices at 1.5 mm (loading excluded); the paper preset runs with
untrained weights, which cost the same time as trained ones.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time

from cmrseg.errors import CMRSegError

SLICES = 12
CINE_FRAMES = 25


def measure(model: str, precision: str, repeats: int) -> dict:
    """Time ED+ES (2 frames) and a 25-frame cine with the full inference path; runs in the current process."""
    import resource

    import torch

    from cmrseg.inference import Segmenter, segment_frames
    from cmrseg.model import build_model
    from cmrseg.phantom import make_phantom
    from cmrseg.preprocess import PreprocessConfig

    torch.manual_seed(0)
    if model == "paper":
        network = build_model("paper").eval().to(memory_format=torch.channels_last)
        segmenter = Segmenter(network, {"architecture": {"preset": "paper"}}, torch.device("cpu"), PreprocessConfig())
    else:
        segmenter = Segmenter.load(None if model == "shipped" else model, device="cpu")
    segmenter.bf16 = precision == "bf16"
    study = make_phantom(seed=0, frames=CINE_FRAMES, slices=SLICES).study
    segment_frames(study, [0, 7], segmenter)  # warm-up
    ed_es, cine = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        segment_frames(study, [0, 7], segmenter)
        ed_es.append(time.perf_counter() - start)
    for _ in range(max(1, repeats // 2)):
        start = time.perf_counter()
        segment_frames(study, list(range(CINE_FRAMES)), segmenter)
        cine.append(time.perf_counter() - start)
    median_ed_es = sorted(ed_es)[len(ed_es) // 2]
    flops = flops_per_slice(segmenter)
    return {
        "model": model,
        "precision": precision,
        "ms_per_slice": 1000 * median_ed_es / (2 * SLICES),
        "ed_es_seconds": median_ed_es,
        "cine_seconds": sorted(cine)[len(cine) // 2],
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": repeats,
        "threads": torch.get_num_threads(),
        "gflop_per_slice": flops / 1e9,
        "gflops": flops * 2 * SLICES / median_ed_es / 1e9,  # network work only; the time includes the rest
    }


def flops_per_slice(segmenter) -> float:
    """Floating-point operations of the network(s) for one slice (a multiply-add counts 2), from torch's
    FLOP counter on one forward pass at the network's input size."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cmrseg.neighbours import context_of

    size = segmenter.config.size
    total = 0
    with torch.inference_mode():
        for network in segmenter.networks:
            batch = torch.zeros(1, 2 * context_of(network) + 1, *size).to(memory_format=torch.channels_last)
            with FlopCounterMode(display=False) as counter:
                network(batch)
            total += counter.get_total_flops()
    return float(total)


def check_models(models: list[str]) -> None:
    """Each model must be 'shipped', 'paper' or a readable CMRSeg checkpoint, before anything is timed."""
    from cmrseg.model.checkpoint import read_checkpoint

    for model in models:
        if model not in ("shipped", "paper"):
            read_checkpoint(model)  # raises CMRSegError naming what is wrong


def precisions() -> tuple[str, ...]:
    """The precisions inference can run in on this machine: bf16 only where the CPU computes it natively
    (elsewhere inference never uses it, and emulated bf16 would take several times as long to measure)."""
    from cmrseg.inference import cpu_has_fast_bf16

    return ("fp32", "bf16") if cpu_has_fast_bf16() else ("fp32",)


def run_benchmark(models: list[str], repeats: int, measured: tuple[str, ...]) -> list[dict]:
    if repeats < 1:
        raise CMRSegError(f"--repeats {repeats}: give at least 1.")
    check_models(models)
    rows = []
    for model in models:
        for precision in measured:
            call = f"measure({model!r}, {precision!r}, {repeats})"
            code = f"import json; from cmrseg.benchmark import measure; print(json.dumps({call}))"
            output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if output.returncode != 0:
                lines = output.stderr.strip().splitlines() or ["no message"]
                raise CMRSegError(f"Benchmarking {model} ({precision}) failed: {lines[-1]}")
            rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
            print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: dict) -> str:
    return (f"| {row['model']} | {row['precision']} | {row['ms_per_slice']:.0f} | {row['ed_es_seconds']:.2f} "
            f"| {row['cine_seconds']:.1f} | {row['peak_memory_mb']:.0f} | {row['gflop_per_slice']:.2f} "
            f"| {row['gflops']:.0f} |")


def main(models: list[str], repeats: int) -> int:
    print(f"CPU: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"ED+ES = 2 x {SLICES} slices; cine = {CINE_FRAMES} x {SLICES} slices; medians of {repeats} runs")
    measured = precisions()
    if "bf16" not in measured:
        print("bf16 not measured: this CPU has no native bf16, so inference here runs in fp32")
    print("| model | precision | ms per slice | ED+ES study (s) | 25-frame cine (s) | peak memory (MB) "
          "| GFLOP per slice | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    run_benchmark(models, repeats, measured)
    return 0
