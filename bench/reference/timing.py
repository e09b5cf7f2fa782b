"""The timing both reference programs share: a few warm-up steps, then the median."""

import statistics
import time


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
