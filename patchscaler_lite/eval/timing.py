"""How every timing in the bench and the notebooks is taken.

Wall-clock around the method call only (degradation, metrics and I/O excluded), with
torch.cuda.synchronize() before reading the clock on CUDA. Peak memory: torch's allocator peak on
CUDA; on CPU the peak resident-set growth of the process during the call: the kernel's high-water
mark where it can be reset (Linux), else psutil samples every 5 ms. Before each CPU call,
gc.collect() (earlier garbage is not released inside the window) and glibc's malloc_trim (memory
malloc kept from earlier calls goes back to the OS, so reusing it still counts as growth).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import re
import threading
import time

import psutil
import torch

CLEAR_REFS, STATUS = "/proc/self/clear_refs", "/proc/self/status"     # Linux procfs


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc, or None (another C library or OS)."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _trim_heap() -> None:
    """Return the memory malloc keeps after frees to the OS (glibc), so that a call reusing it
    still shows as resident growth; a no-op elsewhere."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _reset_kernel_peak() -> bool:
    """Reset this process's resident high-water mark (Linux >= 4.0); False where that is refused."""
    try:
        with open(CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _kernel_peak() -> int:
    """The resident high-water mark (bytes) of this process since the last reset (VmHWM)."""
    with open(STATUS) as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


class _PeakRSS:
    """Peak resident memory growth (MB) of this process while the context is open (CPU).

    Exact where the kernel lets us reset its high-water mark (Linux); elsewhere psutil samples the
    resident size every 5 ms, which can miss a short peak on a loaded machine.
    """

    def __enter__(self):
        gc.collect()                 # earlier garbage freed now, not inside the window
        _trim_heap()
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.kernel = _reset_kernel_peak()
        self.stop = False
        self.thread = None if self.kernel else threading.Thread(target=self._watch, daemon=True)
        if self.thread:
            self.thread.start()
        return self

    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        if self.thread:
            self.thread.join()
        if self.kernel:
            self.peak = _kernel_peak()
        self.mb = max(0, self.peak - self.base) / 2**20


def rss_method() -> str:
    """How _PeakRSS measures on this machine (for the protocol)."""
    if _reset_kernel_peak():
        return "the kernel's resident high-water mark (VmHWM, reset before each call)"
    return "psutil samples of the resident size every 5 ms"


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


def protocol(device, *, warmup: str, batch: str, inside: str) -> dict[str, str | int]:
    """How the timings of one run were taken, as a dict for the JSON (see `protocol_lines`).

    warmup, batch: what ran before the clock and how many images/patches go in one call;
    inside: what the timer covers.
    """
    cuda = torch.device(device).type == "cuda"
    return {
        "device": device_name(device), "threads": torch.get_num_threads(), "warmup": warmup,
        "batch": batch,
        "timer": f"time.perf_counter() around the method call only ({inside}); degradation, "
                 "metrics and file I/O outside",
        "sync": "torch.cuda.synchronize() before each clock read" if cuda else "none (CPU)",
        "memory": "torch.cuda.max_memory_allocated (reset before each call)" if cuda else
                  f"peak growth of the process's resident memory: {rss_method()}; gc.collect() "
                  "and malloc_trim(0) before each call"}


def protocol_lines(p: dict) -> str:
    """The protocol dict as `key: value` lines, for printing under a table."""
    return "\n".join(f"  {k}: {v}" for k, v in p.items())


def timing_protocol(pipe) -> str:
    """One line stating how every timing in the notebooks is taken."""
    sync = "torch.cuda.synchronize() before each clock read, " if pipe.device.type == "cuda" else ""
    return (f"device {device_name(pipe.device)}; batch 1 image, {pipe.pgs.batch_size} patches per "
            f"denoiser call; one warm-up call first; wall-clock around the method only ({sync}"
            "degradation, metrics and I/O excluded)")
