#!/usr/bin/env python
"""Measure what the book's run time is made of, every figure a ratio taken side by side in one process.

    python scripts/benchmark.py [--n 4096] [--profile book] [--out results/bench.json]

1. MaxBlurPool forward+backward (channels-last, batch 128, the zoo's three shapes): accelerated (shiftlab.fast) and
   plain, against antialiased-cnns, kornia and a plain MaxPool.
2. Training throughput (images/s, float32 as every CPU trains) of each zoo architecture on one thread (as the zoo
   trains), accelerated and plain; its achieved GFLOP/s as a fraction of a 1024^2 matmul's on one thread in the same
   run; and the aggregate of one worker per core (how the zoo trains a chapter's models) against one process using
   every core. Evaluation throughput (batch 1024, inference) on one thread and on every core, accelerated and plain.
3. Shift evaluation (image.shifts/s) of the S x S output grid: the batched metric against a naive
   loop over images and shifts.
4. Wall time of every notebook, cold and warm, from the last run's results/<profile>/run_times.json.

Prints one table per part and writes them to --out. Nothing here is asserted by the tests.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from shiftlab import data, fast, layers, models, protocols, runtime  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

CL = torch.channels_last
SHAPES = [(16, 32), (32, 16), (64, 8)]
MAXPOOL = models.ModelConfig(downsample="max", padding="circular")
ARCHS = {   # architecture and the frame it trains on (px)
    "MaxPool": (MAXPOOL, 32),
    "MaxBlurPool-3": (models.ModelConfig(downsample="maxblur", filt_size=3, padding="circular"), 32),
    "MaxBlurPool-5": (models.ModelConfig(downsample="maxblur", filt_size=5, padding="circular"), 32),
    "MaxBlurPool-5, zero padding": (models.ModelConfig(downsample="maxblur", filt_size=5, padding="zeros"), 32),
    "APS": (models.ModelConfig(downsample="maxaps", padding="circular"), 32),
    "APS-LPF": (models.ModelConfig(downsample="maxaps", filt_size=3, padding="circular"), 32),
    "ResNet-like": (models.ModelConfig(arch="resnet", downsample="strided", padding="circular"), 32),
    "canvas VGG-like": (MAXPOOL, 64),
}


def per_call(fn, reps: int) -> float:
    """Median seconds of fn() over reps calls, after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def pool_layers() -> list[dict]:
    """Forward+backward ms of each MaxBlurPool implementation; ratios to antialiased-cnns."""
    import antialiased_cnns
    import kornia

    rows = []
    for m in (3, 5):
        for c, n in SHAPES:
            x = torch.randn(128, c, n, n).contiguous(memory_format=CL).requires_grad_()
            impls = {
                "ours (circular)": fast.accelerate(layers.MaxBlurPool(c, m, pad_mode="circular")),
                "ours (reflect)": fast.accelerate(layers.MaxBlurPool(c, m, pad_mode="reflect")),
                "ours plain (circular)": layers.MaxBlurPool(c, m, pad_mode="circular"),
                "antialiased-cnns": torch.nn.Sequential(torch.nn.MaxPool2d(2, 1),
                                                        antialiased_cnns.BlurPool(c, filt_size=m)),
                "kornia": kornia.filters.MaxBlurPool2D(m),
                "MaxPool(2, 2)": torch.nn.MaxPool2d(2, 2),
            }
            ms = {k: 1e3 * per_call(lambda f=f, x=x: f(x).sum().backward(), 15) for k, f in impls.items()}
            ref = ms["antialiased-cnns"]
            rows.append({"filter": m, "shape": f"128x{c}x{n}x{n}", **{f"{k} ms": round(v, 2) for k, v in ms.items()},
                         **{f"{k} / antialiased-cnns": round(v / ref, 2)
                            for k, v in ms.items() if k != "antialiased-cnns"}})
    return rows


def matmul_gflops(reps: int = 30) -> float:
    """GFLOP/s of a 1024^2 float32 matmul, 2 * 1024^3 / (fastest of reps calls): the practical peak of the current
    thread count (the fastest call, not the median: the first calls run before the core is up to speed)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 1024 ** 3 / min(times) / 1e9


def _network(name: str, accelerated: bool) -> tuple[torch.nn.Module, int]:
    """The architecture (seed 0, channels-last), accelerated or plain, and its frame size."""
    torch.manual_seed(0)
    config, size = ARCHS[name]
    net = models.build(config).to(memory_format=CL)
    return (fast.accelerate(net) if accelerated else net), size


def train_rate(name: str, n: int, threads: int, accelerated: bool = True) -> dict:
    """Training images/s and GFLOP/s of one architecture at batch 128, channels-last, float32, on `threads` threads."""
    torch.set_num_threads(threads)
    net, size = _network(name, accelerated)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.rand(128, 1, size, size).contiguous(memory_format=CL)
    y = torch.randint(0, 10, (128,))

    def step():
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    seconds = per_call(step, max(3, n // 128))
    return {"img/s": 128 / seconds, "GFLOP/s": counter.get_total_flops() / seconds / 1e9}


def eval_rate(name: str, threads: int, accelerated: bool = True, batch: int = 1024) -> float:
    """Inference images/s of one architecture (eval mode, no gradient) at batch 1024 on `threads` threads."""
    torch.set_num_threads(threads)
    net, size = _network(name, accelerated)
    net.eval()
    x = torch.rand(batch, 1, size, size).contiguous(memory_format=CL)
    with torch.no_grad():
        return batch / per_call(lambda: net(x), 5)


def _worker_rate(name: str, n: int) -> float:
    return train_rate(name, n, 1)["img/s"]


def training(n: int) -> list[dict]:
    """Per architecture: one thread, every core in one process, one worker per core (aggregate)."""
    cores = runtime.cpu_count()
    torch.set_num_threads(1)
    peak = matmul_gflops()
    rows = []
    for name in ARCHS:
        one = train_rate(name, n, 1)
        one_plain = train_rate(name, n, 1, accelerated=False)
        evals = {(t, acc): eval_rate(name, t, acc) for t in (1, cores) for acc in (True, False)}
        many = train_rate(name, n, cores)
        # one spawned worker per core, as the zoo's workers
        with runtime.large_pages_in_new_processes(), \
                ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
            workers = sum(pool.map(_worker_rate, [name] * cores, [n] * cores))
        rows.append({"architecture": name, "img/s (1 thread)": round(one["img/s"]),
                     "GFLOP/s (1 thread)": round(one["GFLOP/s"], 1),
                     "fraction of matmul GFLOP/s": round(one["GFLOP/s"] / peak, 2),
                     "train accelerated / plain": round(one["img/s"] / one_plain["img/s"], 2),
                     "eval img/s (1 thread)": round(evals[1, True]),
                     f"eval img/s ({cores} threads)": round(evals[cores, True]),
                     f"eval {cores} threads / 1": round(evals[cores, True] / evals[1, True], 2),
                     "eval accelerated / plain (1 thread)": round(evals[1, True] / evals[1, False], 2),
                     f"eval accelerated / plain ({cores} threads)": round(evals[cores, True] / evals[cores, False], 2),
                     f"img/s ({cores} threads, 1 process)": round(many["img/s"]),
                     f"img/s ({cores} workers x 1 thread)": round(workers),
                     "workers / threads": round(workers / many["img/s"], 2)})
    torch.set_num_threads(cores)
    rows.append({"architecture": "1024^2 matmul, 1 thread", "GFLOP/s (1 thread)": round(peak, 1)})
    return rows


def shift_evaluation(n_images: int) -> list[dict]:
    """image.shifts/s of the S x S output grid: batched (protocols.output_change_grid) vs one image and shift per
    call."""
    runtime.set_threads()
    torch.manual_seed(0)
    net = fast.accelerate(models.build(MAXPOOL)).eval().to(memory_format=CL)
    x = data.load("fashion_mnist", "test").subset(n_images).as_float(32)
    period = net.cfg.total_stride
    batched = per_call(lambda: protocols.output_change_grid(net, x, period), 3)

    @torch.no_grad()
    def naive():
        for i in range(min(8, len(x))):
            ref = net(x[i:i + 1])
            for dy in range(period):
                for dx in range(period):
                    net(torch.roll(x[i:i + 1], (dy, dx), dims=(-2, -1))).sub(ref)

    naive_s = per_call(naive, 3) * len(x) / min(8, len(x))
    work = len(x) * (period * period + 1)
    return [{"evaluation": f"{period}x{period} output grid, {len(x)} images",
             "batched image.shifts/s": round(work / batched), "naive image.shifts/s": round(work / naive_s),
             "speed-up": round(naive_s / batched, 1)}]


def notebook_times(profile: str) -> list[dict]:
    """Cold and warm seconds per notebook from the last driver run of the profile."""
    path = ROOT / "results" / profile / "run_times.json"
    if not path.is_file():
        return [{"notebook": f"no run of profile {profile!r} yet ({path} is missing)"}]
    times = json.loads(path.read_text())
    return [{"notebook": k, "cold s": v.get("cold"), "warm s": v.get("warm")} for k, v in sorted(times.items())]


def show(title: str, rows: list[dict]) -> None:
    import pandas as pd

    print(f"\n## {title}\n{pd.DataFrame(rows).to_string(index=False)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--n", type=int, default=4096, help="training images per throughput measurement")
    ap.add_argument("--images", type=int, default=256, help="test images for the shift evaluation")
    ap.add_argument("--profile", default="book", help="whose run_times.json to report")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench.json"))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {runtime.cpu_count()} cores")
    report = {}
    for key, title, fn in (("pooling", "1. MaxBlurPool forward+backward (ms, channels-last)", pool_layers),
                           ("training", "2. Training throughput", lambda: training(args.n)),
                           ("shift_evaluation", "3. Shift evaluation", lambda: shift_evaluation(args.images)),
                           ("notebooks", f"4. Notebook wall times ({args.profile})",
                            lambda: notebook_times(args.profile))):
        report[key] = fn()
        show(title, report[key])
    atomic_write_bytes(Path(args.out), (json.dumps(report, indent=2) + "\n").encode())
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
