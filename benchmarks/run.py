"""minidl against PyTorch (CPU) on identical work, with the machine's own GEMM rate as the yardstick.

For every case it prints minidl's time, PyTorch's time on the identical work,
the ratio minidl / torch (median of the per-round ratios, with their range),
minidl's GFLOP/s and that as a percentage of numpy's float32 GEMM rate
measured in the same run at matching sizes: the minidl worker times, with
plain ``numpy.matmul`` into preallocated outputs, exactly the GEMMs the case
needs at minimum (forward, dW and dX of every Conv2D/Dense as im2col
products; dX of a network's first layer excluded) at the same thread setting,
interleaved with the rounds. "% GEMM" = (those GEMMs' time) / (minidl's time):
100 % would mean minidl spends nothing outside ideal GEMMs.

Each framework runs in its own worker process (thread pools never share a
process); rounds are interleaved (minidl, torch, then torch, minidl, ...) and
medians reported with the per-round spread (min-max). Thread settings: "1"
(threadpoolctl limit 1 on numpy's BLAS, under which the Trainer's ``blas_threads="auto"`` runs on
one thread; ``torch.set_num_threads(1)``) and "all" (no limit; minidl as the Trainer runs by
default, ``blas_threads="auto"``: BLAS on one thread, large batches split over the cores --
layer cases inside ``minidl.functional._engine.blas.auto_threads`` -- against PyTorch's defaults, and
in addition minidl epochs with ``Trainer(blas_threads=None)``).
``mnist_predict`` runs in a fresh process per framework and setting, so that
its peak resident memory (ru_maxrss) is its own.

Usage:  python benchmarks/run.py [--quick] [--cases a,b] [--rounds N] [--threads 1,all]
                                 [--out docs/performance.md] [--no-write]
Writes docs/performance.md when run without --quick (or when --out is given).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's minidl, and bench_cases

import bench_cases as bc  # noqa: E402
import report  # noqa: E402

PAUSE = 0.1  # seconds between hand-overs: OpenBLAS workers spin ~2^28 cycles after a call before sleeping


class Worker:
    def __init__(self, framework, threads):
        self.framework = framework
        self.proc = subprocess.Popen([sys.executable, str(HERE / "run.py"), "--worker", framework, threads],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = None

    def hello(self):
        self.info = json.loads(self.proc.stdout.readline())
        return self.info

    def run(self, case, variant, reps, rnd, quick):
        time.sleep(PAUSE)
        self.proc.stdin.write(json.dumps(dict(case=case, variant=variant, reps=reps, round=rnd, quick=quick)) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.framework} worker died on {case} ({variant})")
        self.last = json.loads(line)  # seconds, and per call: sys and user CPU seconds, minor page faults
        return self.last["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def start_workers(threads, log):
    """A minidl and a torch worker whose threads are fixed at start (torch None when not importable)."""
    mdl, tch = Worker("minidl", threads), Worker("torch", threads)
    minfo, tinfo = mdl.hello(), tch.hello()
    if "error" in minfo:
        raise SystemExit(f"minidl worker failed: {minfo['error']}")
    if "error" in tinfo:
        log(f"torch not importable ({tinfo['error']}): torch columns skipped (pip install torch==2.13.0)")
        tch.close()
        tch = None
    return mdl, tch, minfo, tinfo


def stop_workers(mdl, tch):
    mdl.close()
    if tch:
        tch.close()


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def warm_up(name, c, epoch, mdl, tch, args):
    """Warm-up calls, then ``(reps, gemm_reps)``: calls per round so that a round lasts
    about ``args.target`` seconds (--quick: neither, one call)."""
    reps = gemm_reps = 1
    if args.quick:
        return reps, gemm_reps
    mdl.run(name, "default", 1, -1, args.quick)
    if not epoch:
        t = mdl.run(name, "default", 1, 0, args.quick)
        reps = max(1, round(args.target / max(t, 1e-6)))
    if c["kind"] not in ("pool", "norm"):
        tg = mdl.run(name, "gemm", 1, 0, args.quick)
        gemm_reps = max(1, round(args.target / max(tg, 1e-6)))
    if tch:
        tch.run(name, "default", 1, -1, args.quick)
    return reps, gemm_reps


def time_case(name, threads, mdl, tch, args, log):
    """Interleaved rounds of one case at one thread setting; returns a result row dict."""
    c = bc.CASES[name]
    epoch = c["kind"] == "epoch"
    rounds = args.rounds if not epoch else max(1, args.epoch_rounds)
    reps, gemm_reps = warm_up(name, c, epoch, mdl, tch, args)
    variants = ["default"] + (["blas_none"] if epoch and threads == "all" else [])
    if "blas_none" in variants and not args.quick:
        mdl.run(name, "blas_none", 1, -1, args.quick)
    times = {("minidl", v): [] for v in variants}
    usage = {v: [] for v in variants}
    times["torch"], times["gemm"] = [], []
    for r in range(rounds):
        order = ["minidl", "torch"] if r % 2 == 0 else ["torch", "minidl"]
        for who in order:
            if who == "torch" and tch:
                times["torch"].append(tch.run(name, "default", reps, r, args.quick))
            elif who == "minidl":
                for v in variants:
                    times[("minidl", v)].append(mdl.run(name, v, reps, r, args.quick))
                    usage[v].append(mdl.last)
        if c["kind"] not in ("pool", "norm"):
            times["gemm"].append(mdl.run(name, "gemm", gemm_reps, r, args.quick))
    triples, scale = bc.case_gemms(name, args.quick)
    flops = bc.triple_flops(triples) * scale
    gemm_s = statistics.median(times["gemm"]) * scale if times["gemm"] else None
    rows = []
    for v in variants:
        ours = times[("minidl", v)]
        row = report.summarize(name, threads, v, ours, times["torch"], flops, gemm_s, reps,
                               {k: statistics.median(u[k] for u in usage[v]) for k in ("sys", "user", "faults")})
        rows.append(row)
        log(report.line(row))
    return rows


def predict_rows(threads, have_torch, args, log):
    th = "0" if threads == "all" else "1"
    rounds = 1 if args.quick else max(1, min(args.rounds, 2))
    out = {}
    for fw in ["minidl", "torch"] if have_torch else ["minidl"]:
        proc = subprocess.run([sys.executable, str(HERE / "run.py"), "--predict", fw, th,
                               "1" if args.quick else "0", str(rounds)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"predict child ({fw}) failed:\n{proc.stderr}")
        out[fw] = json.loads(proc.stdout.strip().splitlines()[-1])
    triples, scale = bc.case_gemms("mnist_predict", args.quick)
    row = report.summarize("mnist_predict", threads, "default", out["minidl"]["seconds"],
                           out["torch"]["seconds"] if have_torch else [], bc.triple_flops(triples) * scale,
                           None, 1, None)
    row["rss"] = {fw: v["maxrss_mib"] for fw, v in out.items()}
    row["input_mib"] = out["minidl"]["input_mib"]
    log(report.line(row))
    return [row]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 round, small epochs: a smoke run (< 60 s)")
    p.add_argument("--cases", default=",".join(bc.CASES), help="comma-separated, from: " + ", ".join(bc.CASES))
    p.add_argument("--rounds", type=int, default=None, help="rounds per case (default 5; --quick 1)")
    p.add_argument("--epoch-rounds", type=int, default=None, help="rounds (epochs) of epoch cases (default 3)")
    p.add_argument("--threads", default="1,all", help="thread settings to run: 1, all or 1,all")
    p.add_argument("--out", default=None, help="markdown file to write (default docs/performance.md unless --quick)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in bc.CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {', '.join(bc.CASES)}")
    settings = [t.strip() for t in args.threads.split(",")]
    if not settings or any(t not in ("1", "all") for t in settings):
        p.error(f"--threads takes 1, all or 1,all. Received: {args.threads!r}")
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.epoch_rounds = args.epoch_rounds or (1 if args.quick else min(args.rounds, 3))
    args.target = 0.03 if args.quick else 0.15

    started = time.perf_counter()
    def log(line):
        print(line, flush=True)

    mdl, tch, minfo, tinfo = start_workers(settings[0], log)
    machine = dict(cpu=cpu_model(), cores=os.cpu_count(), affinity=len(os.sched_getaffinity(0)),
                   python=platform.python_version(), platform=platform.platform(), minidl=minfo,
                   torch=None if tch is None else tinfo,
                   env={k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "OMP_", "MKL_"))},
                   load=os.getloadavg(),
                   date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    for line in report.machine_lines(machine):
        log(line)
    rows = []
    try:
        for threads in settings:
            log(f"-- threads: {threads}")
            if threads != settings[0]:
                stop_workers(mdl, tch)
                mdl, tch, *_ = start_workers(threads, log)
            for name in cases:
                t0 = time.perf_counter()
                if bc.CASES[name]["kind"] == "predict":
                    rows += predict_rows(threads, tch is not None, args, log)
                else:
                    rows += time_case(name, threads, mdl, tch, args, log)
                log(f"   ({name}: {time.perf_counter() - t0:.1f} s)")
    finally:
        stop_workers(mdl, tch)
    elapsed = time.perf_counter() - started
    machine["load_end"] = os.getloadavg()
    log(f"total {elapsed:.0f} s")
    out = args.out or (None if args.quick else "docs/performance.md")
    if out and not args.no_write:
        text = report.markdown(rows, machine, args, elapsed)
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else ""
        if NOTES_MARKER in old:  # the hand-written findings below the marker are kept
            text = text.rstrip() + "\n\n" + old[old.index(NOTES_MARKER):]
        path.write_text(text)
        log(f"wrote {out}")
    return 0


#: Everything after this line in the output file is written by hand and kept on every run.
NOTES_MARKER = "<!-- findings: written by hand, kept by benchmarks/run.py -->"


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--worker":
        bc.worker(sys.argv[2], None if sys.argv[3] == "all" else int(sys.argv[3]))
    elif len(sys.argv) >= 6 and sys.argv[1] == "--predict":  # framework, threads (0 = all), quick, rounds
        bc.predict_child(sys.argv[2], int(sys.argv[3]) or None, sys.argv[4] == "1", int(sys.argv[5]))
    else:
        sys.exit(main())
