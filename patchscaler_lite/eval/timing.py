"""How every timing in the bench and the notebooks is taken.

Wall-clock around the method call only (degradation, metrics and I/O excluded), with
torch.cuda.synchronize() before reading the clock on CUDA. Peak memory: torch's allocator peak on
CUDA; on CPU the peak resident-set growth of the process, sampled every 5 ms during the call.
"""

from __future__ import annotations

import threading
import time

import psutil
import torch


class _PeakRSS:
    """Peak resident memory growth (MB) of this process while the context is open (CPU)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.mb = (self.peak - self.base) / 2**20


def timed(run, lr, device) -> tuple[torch.Tensor, dict, float, float]:
    """(image, extras, seconds, peak MB) for one call, timed as the module docstring says."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        img, extra = run(lr)
        torch.cuda.synchronize()
        return img, extra, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**20
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        img, extra = run(lr)
        sec = time.perf_counter() - t0
    return img, extra, sec, mem.mb


def device_name(device) -> str:
    """A human name for where the timings come from, e.g. 'cpu (2 threads)' or the GPU model."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def timing_protocol(pipe) -> str:
    """One line stating how every timing in the notebooks is taken."""
    sync = "torch.cuda.synchronize() before each clock read, " if pipe.device.type == "cuda" else ""
    return (f"device {device_name(pipe.device)}; batch 1 image, {pipe.pgs.batch_size} patches per "
            f"denoiser call; one warm-up call first; wall-clock around the method only ({sync}"
            "degradation, metrics and I/O excluded)")
