"""Where the pipeline's CPU time goes, and how fast it is against an older revision.

    python scripts/bench_cpu.py                       # profile the working tree at 128^2 and 384^2 LR
    python scripts/bench_cpu.py --baseline e286491    # + the same runs from that revision, alternated
    python scripts/bench_cpu.py --batch-sizes 32 64 128 256   # choose PGSConfig.batch_size

Every measurement runs in a fresh worker process (`--worker`), so peak RSS is that run's own:
load the shipped lite pipeline, one warm-up call, then `--repeats` timed calls of the whole
pipeline (median). Inputs are real photo content: the 128^2 LR is astronaut x4-bicubic-down, the
384^2 LR a crop of the astronaut HR photo itself (the pipeline upscales whatever it is given).
Profile (working tree only): the seconds inside the Patch-DiT (condition + step, or forward),
the GRM stage, and everything else (retrieval, grouping, DDIM arithmetic, reassembly); FLOPs
counted with torch's FlopCounterMode (attention added: the CPU SDPA kernel is not counted by
default) and divided by those seconds, against a 2048^2 fp32 matmul timed in the same worker.
With --baseline, the revision is checked out into a temporary git worktree and the runs of both
trees are interleaved, so the ratio is measured under the same machine conditions; the outputs
of both are compared (max |difference|), as they run and with the GRM untiled in both (the old
tiles were blended, not exact, so on images over 128 LR pixels the coarse image itself changed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = (128, 384)


# ------------------------------------------------------------------------------------ worker
def lr_input(size: int):
    """A real (1, 3, size, size) LR image in [0, 1] (see the module docstring)."""
    from patchscaler_lite import data

    hr = data.load_photos("val")["astronaut"][None]                         # (1, 3, 512, 512)
    return data.degrade(hr, 4)[..., :size, :size] if size <= 128 else hr[..., :size, :size]


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_methods(den, names, acc: list) -> None:
    """Wrap den.<name> (where it exists) to add its wall time to acc[0]."""
    for name in names:
        fn = getattr(den, name, None)
        if fn is None:
            continue

        def wrapped(*a, _fn=fn, **k):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                acc[0] += time.perf_counter() - t0
        setattr(den, name, wrapped)


def count_flops(pipe, lr) -> dict:
    """FLOPs of one pipeline call: inside the GRM, and inside the Patch-DiT's calls (condition +
    step, prompt encoder included), each counted by its own FlopCounterMode."""
    import torch
    from torch.utils import flop_counter as fc

    def cpu_sdpa(q, k, v, *args, out_shape=None, **kw):
        return fc.sdpa_flop_count(q, k, v)
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}
    counts = {"grm": 0, "dit": 0}

    def counted(key, fn):
        def run(*a, **k):
            with fc.FlopCounterMode(display=False, custom_mapping=mapping) as c:
                out = fn(*a, **k)
            counts[key] += c.get_total_flops()
            return out
        return run
    den, grm_forward = pipe.denoiser, pipe.grm.forward
    methods = {n: getattr(den, n) for n in ("forward", "condition", "step") if hasattr(den, n)}
    for n, fn in methods.items():
        setattr(den, n, counted("dit", fn))
    pipe.grm.forward = counted("grm", grm_forward)
    try:
        pipe(lr, generator=torch.Generator().manual_seed(0))
    finally:
        for n, fn in methods.items():
            setattr(den, n, fn)
        pipe.grm.forward = grm_forward
    return counts


def worker(args) -> dict:
    if args.cli_policy:                               # before torch loads, as the CLI does
        from patchscaler_lite.runtime import configure_cli_process
        configure_cli_process()
    if args.chunk:
        return retrieval_worker(args)
    import dataclasses

    import torch

    import patchscaler_lite as psl

    pipe = psl.PatchScalerPipeline.from_pretrained()
    if args.untiled_grm:                              # both trees: the GRM in one piece
        import functools

        import patchscaler_lite.pipeline as pl
        pl.restore = functools.partial(pl.restore, tile=None)
    if args.batch_size:
        pipe.pgs = dataclasses.replace(pipe.pgs, batch_size=args.batch_size)
    lr = lr_input(args.size)
    dit_s = [0.0]
    _timed_methods(pipe.denoiser, ("forward", "condition", "step"), dit_s)
    run = lambda: pipe(lr, generator=torch.Generator().manual_seed(0))  # noqa: E731
    out = run()                                                          # warm-up
    totals, stages, dits = [], [], []
    for _ in range(args.repeats):
        dit_s[0] = 0.0
        t0 = time.perf_counter()
        out = run()
        totals.append(time.perf_counter() - t0)
        stages.append(out.seconds)
        dits.append(dit_s[0])
    if args.save:
        torch.save(out.image, args.save)
    res = {"seconds": statistics.median(totals), "dit_seconds": statistics.median(dits),
           "grm_seconds": statistics.median(s["grm"] for s in stages),
           "stages": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
           "patch_nfe": out.total_nfe, "threads": torch.get_num_threads(), "code": psl.__file__,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.profile:
        res.update(flops=count_flops(pipe, lr), matmul_gflops=matmul_gflops())
    return res


def retrieval_worker(args) -> dict:
    """Retrieval alone (embed + search) for the patches of an LR image, `args.chunk` at a time."""
    import torch

    import patchscaler_lite as psl
    from patchscaler_lite.texture.memory import retrieve

    pipe = psl.PatchScalerPipeline.from_pretrained()
    coarse, _ = psl.restore(pipe.grm, lr_input(args.size))
    y0, _ = psl.patchify(coarse, pipe.patch_size, pipe.overlap)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with torch.no_grad():
        retrieve(pipe.memory, y0[:args.chunk], 4, chunk=args.chunk)           # warm-up
        times = [_seconds(lambda: retrieve(pipe.memory, y0, 4, chunk=args.chunk))
                 for _ in range(args.repeats)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"chunk": args.chunk, "patches": len(y0), "seconds": statistics.median(times),
            "peak_rss_mb": peak, "rss_before_mb": base}


def competitor() -> subprocess.Popen:
    """Another CPU-bound process on the same cores (what a shared machine or notebook does)."""
    code = "import torch\na = torch.randn(384, 384)\nwhile True:\n    a @ a"
    return subprocess.Popen([sys.executable, "-c", code])


# -------------------------------------------------------------------------------- controller
def run_worker(root: Path, size: int, *, repeats: int, batch_size: int = 0, profile=False,
               save: Path | None = None, env: dict | None = None, cli_policy=False,
               chunk: int = 0, untiled_grm=False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--size", str(size),
           "--repeats", str(repeats), "--batch-size", str(batch_size), "--chunk", str(chunk)]
    cmd += ["--profile"] * profile + (["--save", str(save)] if save else [])
    cmd += ["--cli-policy"] * cli_policy + ["--untiled-grm"] * untiled_grm
    e = dict(os.environ, PYTHONPATH=str(root), **(env or {}))
    done = subprocess.run(cmd, cwd=root, env=e, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"worker failed in {root}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def profile_summary(r: dict) -> dict:
    f, total = r["flops"], r["seconds"]
    overhead = total - r["dit_seconds"] - r["grm_seconds"]
    dit_gf = f["dit"] / r["dit_seconds"] / 1e9
    grm_gf = f["grm"] / r["grm_seconds"] / 1e9
    return {"dit_gflops": dit_gf, "dit_of_matmul": dit_gf / r["matmul_gflops"],
            "grm_gflops": grm_gf, "grm_of_matmul": grm_gf / r["matmul_gflops"],
            "share_dit": r["dit_seconds"] / total, "share_grm": r["grm_seconds"] / total,
            "share_overhead": overhead / total}


def policies(sizes, repeats: int, rounds: int) -> list[dict]:
    """The CLI's process policy (runtime.py) against the library's defaults, alone on the machine
    and beside a competing process; interleaved rounds, medians."""
    rows = []
    for contended in (False, True):
        other = competitor() if contended else None
        try:
            for size in sizes:
                t = {False: [], True: []}
                for _ in range(rounds):
                    for cli in (False, True):
                        t[cli].append(run_worker(REPO, size, repeats=repeats, cli_policy=cli)["seconds"])
                plain, cli = statistics.median(t[False]), statistics.median(t[True])
                rows.append({"lr": size, "contended": contended, "library_s": plain, "cli_s": cli,
                             "speedup": plain / cli})
        finally:
            if other is not None:
                other.kill()
    return rows


def compare(baseline: str, sizes, repeats: int, rounds: int, cli_policy=False) -> list[dict]:
    """Interleave worker runs of `baseline` and the working tree; speed-up = median ratio."""
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), baseline],
                       check=True, capture_output=True)
        try:
            for size in sizes:
                new_t, old_t = [], []
                for _ in range(rounds):
                    o = run_worker(old, size, repeats=repeats, save=Path(tmp) / "old.pt")
                    n = run_worker(REPO, size, repeats=repeats, save=Path(tmp) / "new.pt",
                                   cli_policy=cli_policy)
                    old_t.append(o["seconds"])
                    new_t.append(n["seconds"])
                diff = (torch.load(Path(tmp) / "new.pt") - torch.load(Path(tmp) / "old.pt")).abs()
                for tree, name in ((old, "old_u.pt"), (REPO, "new_u.pt")):
                    run_worker(tree, size, repeats=1, save=Path(tmp) / name, untiled_grm=True)
                same = (torch.load(Path(tmp) / "new_u.pt") - torch.load(Path(tmp) / "old_u.pt")).abs()
                rows.append({"lr": size, "baseline_s": statistics.median(old_t),
                             "now_s": statistics.median(new_t),
                             "speedup": statistics.median(old_t) / statistics.median(new_t),
                             "max_abs_diff": diff.max().item(),
                             "max_abs_diff_grm_untiled": same.max().item(),
                             "baseline_rss_mb": o["peak_rss_mb"], "now_rss_mb": n["peak_rss_mb"]})
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                           check=False, capture_output=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds with --baseline")
    ap.add_argument("--baseline", help="git revision to compare against")
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[])
    ap.add_argument("--chunks", type=int, nargs="*", default=[], help="retrieval chunk sizes")
    ap.add_argument("--policies", action="store_true",
                    help="the CLI's CPU policy vs the library defaults, idle and contended")
    ap.add_argument("--cli-policy", action="store_true",
                    help="with --baseline: run the working tree under the CLI's CPU policy")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--untiled-grm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    report = {"cpus": os.cpu_count(), "profile": {}, "batch_sizes": {}, "chunks": {},
              "policies": None, "baseline": None}
    for size in [] if args.no_profile else args.sizes:
        r = run_worker(REPO, size, repeats=args.repeats, profile=True)
        report["profile"][size] = {**r, **profile_summary(r)}
        print(f"LR {size}^2: {json.dumps(report['profile'][size], indent=1)}", flush=True)
    for b in args.batch_sizes:
        report["batch_sizes"][b] = {s: run_worker(REPO, s, repeats=args.repeats, batch_size=b)
                                    for s in args.sizes}
        print(f"batch {b}: " + ", ".join(f"{s}^2 {v['seconds']:.2f} s / {v['peak_rss_mb']:.0f} MB"
                                         for s, v in report["batch_sizes"][b].items()), flush=True)
    for c in args.chunks:
        report["chunks"][c] = r = run_worker(REPO, max(args.sizes), repeats=args.repeats, chunk=c)
        print(f"retrieval chunk {c}: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
              f"({r['patches']} patches)", flush=True)
    if args.policies:
        report["policies"] = policies(args.sizes, args.repeats, args.rounds)
        for row in report["policies"]:
            print(json.dumps(row), flush=True)
    if args.baseline:
        rows = compare(args.baseline, args.sizes, args.repeats, args.rounds, args.cli_policy)
        report["baseline"] = {"revision": args.baseline, "cli_policy": args.cli_policy, "rows": rows}
        for row in report["baseline"]["rows"]:
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
