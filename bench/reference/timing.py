"""What both reference programs share: their common options, the training pairs, and the
timing (a few warm-up steps, then the median)."""

import argparse
import statistics
import time

import torch


def setup(**extra):
    """Parses --p, --alpha, --steps, --threads and the program's own options (name=default),
    sets the thread count and seed; returns the options and the training pairs [n, 2]."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    for name, default in extra.items():
        ap.add_argument(f"--{name}", type=type(default), default=default)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    pairs = torch.cartesian_prod(torch.arange(a.p), torch.arange(a.p))
    return a, pairs[torch.randperm(len(pairs))][: int(a.alpha * a.p * a.p)]


def median_ms(step, steps: int, warmup: int = 3) -> float:
    """Median milliseconds of `steps` calls of `step()` after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)
