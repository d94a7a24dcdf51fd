"""How steady is this machine? Per-call variation of a fixed CPU workload, and over what time it drifts.

The numbers behind docs/validation.md's description of a host's own speed: a fixed workload (a 3x3
convolution and dense matmuls, one or two intra-op threads) timed back to back for a while; per
call the spread (IQR over the median) and the slowest call, and how alike calls some time apart
are (autocorrelation of log times at lags of about 0.01 s, 0.1 s, 0.5 s and 2 s). Slow drift
(high correlation at long lags) is what interleaved, bracketed rounds cancel; fast noise is what
only more rounds average out. Run it with nothing else running:

    python tools/host_noise.py --seconds 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def workload():
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.randn(4, 64, 32, 32)
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def call():
        with torch.inference_mode():
            conv(x)
            for _ in range(8):
                a @ b

    return call


def measure(threads: int, seconds: float) -> dict:
    torch.set_num_threads(threads)
    call = workload()
    for _ in range(20):
        call()
    starts, times = [], []
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        start = time.perf_counter()
        call()
        starts.append(start - begin)
        times.append(time.perf_counter() - start)
    times = np.asarray(times)
    median = float(np.median(times))
    logs = np.log(times) - np.log(times).mean()
    period = seconds / len(times)
    correlations = {}
    for lag_seconds in (0.01, 0.1, 0.5, 2.0):
        lag = max(1, round(lag_seconds / period))
        if lag < len(logs) - 2:
            correlations[lag_seconds] = float(np.corrcoef(logs[:-lag], logs[lag:])[0, 1])
    q1, q3 = np.percentile(times, [25, 75])
    return {"threads": threads, "calls": len(times), "median_ms": median * 1e3, "iqr": (q3 - q1) / median,
            "slowest": float(times.max()) / median, "correlations": correlations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to time each thread count")
    args = parser.parse_args()
    for threads in (1, 2):
        found = measure(threads, args.seconds)
        lags = ", ".join(f"{lag:g} s: {value:.2f}" for lag, value in found["correlations"].items())
        print(f"{found['threads']} thread(s): {found['calls']} calls of {found['median_ms']:.2f} ms median, "
              f"IQR {found['iqr']:.1%} of the median, slowest {found['slowest']:.2f}x; "
              f"autocorrelation at {lags}")


if __name__ == "__main__":
    main()
