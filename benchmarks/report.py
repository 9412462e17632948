"""Summaries, target checks and the markdown of ``benchmarks/run.py``."""

from __future__ import annotations

import statistics

import bench_cases as bc

OVERHEAD_S = 2e-3  # per call (or per training batch): below this (and < 60 % in GEMMs), per-call overhead dominates


def fmt_s(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def _spread(xs):
    if len(xs) < 2:
        return "-"
    med = statistics.median(xs)
    return f"{(min(xs) / med - 1) * 100:+.0f}/{(max(xs) / med - 1) * 100:+.0f} %"


def summarize(name, threads, variant, ours, theirs, flops, gemm_s, reps, usage):
    c = bc.CASES[name]
    med = statistics.median(ours)
    row = dict(case=name, kind=c["kind"], threads=threads, variant=variant, ours=med, ours_all=ours,
               ours_spread=_spread(ours), reps=reps, flops=flops, gemm_s=gemm_s, usage=usage)
    if theirs:
        ratios = [a / b for a, b in zip(ours, theirs)]
        row.update(theirs=statistics.median(theirs), theirs_spread=_spread(theirs), theirs_all=theirs,
                   ratio=statistics.median(ratios), ratio_lo=min(ratios), ratio_hi=max(ratios))
    # the ratio a minidl spending its whole time in ideal numpy GEMMs would reach
    row["floor"] = gemm_s / row["theirs"] if gemm_s and theirs else None
    row["gflops"] = flops / med / 1e9 if flops else None
    row["pct_gemm"] = gemm_s / med if gemm_s else None
    row["bound"] = _bound(row)
    row["target"] = _target(row)
    return row


def _bound(row):
    text = _bound_main(row)
    u = row.get("usage")
    if u and u["sys"] > 0.1 * row["ours"]:  # kernel time: page faults of fresh large allocations
        text += f"; {u['sys'] / row['ours']:.0%} of the time in the kernel ({u['faults']:.0f} page faults per call)"
    return text


def _bound_main(row):
    kind, med = row["kind"], row["ours"]
    if kind == "pool":  # minimum traffic: read x, write y (forward); read dy, write dx (backward)
        c = bc.CASES[row["case"]]
        n_in = c["batch"] * int(bc.np.prod(c["input"]))
        moved = 4 * (2 * n_in + 2 * n_in // (c["spec"][0][1] ** 2))
        return f"no GEMM: {moved / med / 1e9:.1f} GB/s of minimum memory traffic ({moved / 2**20:.0f} MiB per call)"
    if kind == "norm":  # minimum traffic: read x, write y, then read x, dy, write dx
        c = bc.CASES[row["case"]]
        moved = 4 * 5 * c["batch"] * int(bc.np.prod(c["input"]))
        return f"no GEMM: {moved / med / 1e9:.1f} GB/s of minimum memory traffic ({moved / 2**20:.0f} MiB per call)"
    if kind == "predict":
        return "forward GEMMs (no GEMM reference timed for predict)"
    per_call = med
    if kind == "epoch":
        triples, steps = bc.case_gemms(row["case"], False)
        per_call = med / steps if steps else med  # per training batch (approximate in --quick)
    pct = row["pct_gemm"]
    if pct is not None and pct >= 0.6:
        return f"GEMM-bound ({pct:.0%} of the time would be spent by ideal GEMMs)"
    outside = fmt_s(med - row["gemm_s"]) if row["gemm_s"] else "?"
    what = "per batch" if kind == "epoch" else "per call"
    if per_call < OVERHEAD_S:
        return f"overhead-bound ({fmt_s(per_call)} {what}; {outside} outside GEMMs)"
    return f"outside-GEMM work ({1 - pct:.0%} = {outside} outside GEMMs: unfold/fold, copies, elementwise)"


def _target(row):
    name, ratio, pct = row["case"], row.get("ratio"), row["pct_gemm"]
    if row["kind"] == "conv":
        ok = (pct is not None and pct >= 0.70) or (ratio is not None and ratio <= 1.5)
        if ok:
            return "pass (>= 70 % GEMM or <= 1.5x)"
        need = [f"{0.70 / pct:.2f}x" + " faster for 70 % GEMM"] if pct else []
        need += [f"{ratio / 1.5:.2f}x faster for 1.5x"] if ratio else []
        return "MISS (>= 70 % GEMM or <= 1.5x): needs " + " or ".join(need)
    if name in ("mnist_epoch", "cifar_epoch"):
        if ratio is None:
            return "- (no torch)"
        verdict = ("pass" if ratio <= 1.5 else f"MISS by {ratio / 1.5:.2f}x") + " (<= 1.5x)"
        return verdict if row["variant"] == "default" else f"(info) {verdict}"
    if name == "digits_epoch":
        if ratio is None:
            return "- (no torch)"
        verdict = ("pass" if ratio <= 0.7 else f"MISS by {ratio / 0.7:.2f}x") + " (<= 0.7x)"
        return verdict if row["variant"] == "default" else f"(info) {verdict}"
    return "-"


def line(row):
    label = f"{row['case']} [{row['threads']} thread{'s' if row['threads'] == 'all' else ''}" + (
        f", {row['variant']}]" if row["variant"] != "default" else "]")
    s = f"{label}: minidl {fmt_s(row['ours'])} ({row['ours_spread']})"
    if "ratio" in row:
        s += (f", torch {fmt_s(row['theirs'])} ({row['theirs_spread']}), ratio minidl/torch "
              f"{row['ratio']:.2f}x (rounds {row['ratio_lo']:.2f}-{row['ratio_hi']:.2f})")
    else:
        s += ", torch: skipped (not importable)"
    if row["gflops"]:
        s += f", {row['gflops']:.1f} GFLOP/s"
    if row["pct_gemm"]:
        s += f" = {row['pct_gemm']:.0%} of same-size numpy GEMM ({fmt_s(row['gemm_s'])})"
    if row.get("floor"):
        s += f", GEMMs alone / torch {row['floor']:.2f}x"
    if "rss" in row:
        s += ", peak RSS " + ", ".join(f"{k} {v:.0f} MiB" for k, v in row["rss"].items())
        s += f" (input {row['input_mib']:.0f} MiB; target minidl < 1024 MiB: " \
             f"{'pass' if row['rss']['minidl'] < 1024 else 'MISS'})"
    return s + f"; target: {row['target']}; {row['bound']}"


def machine_lines(m):
    out = [f"machine: {m['cpu']}, {m['cores']} logical cores ({m['affinity']} usable), "
           f"Python {m['python']}, {m['platform']}",
           f"numpy {m['minidl']['numpy']}, minidl {m['minidl']['minidl']}"]
    for b in m["minidl"]["blas"]:
        out.append(f"BLAS (threadpoolctl): {b.get('internal_api')} {b.get('version')}, kernel/architecture "
                   f"{b.get('architecture')}, num_threads {b.get('num_threads')}, "
                   f"threading {b.get('threading_layer')}")
    if m.get("env"):
        out.append("environment: " + ", ".join(f"{k}={v}" for k, v in sorted(m["env"].items()))
                   + " (OPENBLAS_CORETYPE pins numpy's GEMM kernels)")
    t = m["torch"]
    out.append("torch: not importable" if not t else
               f"torch {t['torch']}, {t['torch_threads']} intra-op threads, "
               f"{t['torch_interop_threads']} inter-op threads")
    load = "load average (1, 5, 15 min) at start " + ", ".join(f"{x:.2f}" for x in m["load"])
    if "load_end" in m:
        load += ", at end " + ", ".join(f"{x:.2f}" for x in m["load_end"])
    out.append(f"date: {m['date']}; {load} (other processes share these cores)")
    return out


def _md_row(r):
    case = r["case"] + ("" if r["variant"] == "default" else " (blas_threads=None)")
    theirs = f"{fmt_s(r['theirs'])} ({r['theirs_spread']})" if "ratio" in r else "skipped (no torch)"
    ratio = f"**{r['ratio']:.2f}x** ({r['ratio_lo']:.2f}-{r['ratio_hi']:.2f})" if "ratio" in r else "-"
    gf = f"{r['gflops']:.1f}" if r["gflops"] else "-"
    pct = f"{r['pct_gemm']:.0%}" if r["pct_gemm"] else "-"
    floor = f"{r['floor']:.2f}x" if r.get("floor") else "-"
    target, bound = r["target"], r["bound"]
    if "rss" in r:
        target = ("pass" if r["rss"]["minidl"] < 1024 else "MISS") + " (RSS < 1 GiB)"
        bound = "peak RSS " + ", ".join(f"{k} {v:.0f} MiB" for k, v in r["rss"].items()) + \
                f" (input {r['input_mib']:.0f} MiB)"
    return (f"| {case} | {fmt_s(r['ours'])} ({r['ours_spread']}) | {theirs} | {ratio} | {gf} | {pct} | "
            f"{floor} | {target} | {bound} |")


def markdown(rows, machine, args, elapsed):
    lines = ["# Performance: minidl against PyTorch (CPU)", "",
             "Generated by `python benchmarks/run.py` "
             f"(rounds {args.rounds}, epoch rounds {args.epoch_rounds}{', --quick' if args.quick else ''}; "
             f"{elapsed:.0f} s). Do not edit the tables by hand: rerun the benchmark.", "",
             "## Machine", ""]
    lines += [f"- {s}" for s in machine_lines(machine)]
    lines += ["", "## Method", "",
              "- Each framework runs in its own worker process; rounds are interleaved (minidl, torch, "
              "then torch, minidl, ...), with a 100 ms pause before every timed call (idle BLAS/OpenMP "
              "threads stop spinning). Times are medians over "
              "the rounds, per call (conv, pool, dense: forward + backward computing dX, dW and db with "
              "a random upstream gradient), per epoch, or per predict over the whole set; the spread is "
              "(min/median - 1, max/median - 1) over the rounds. The ratio is the median of the "
              "per-round ratios minidl / torch (range in brackets).",
              "- **% GEMM** = time of the GEMMs the work needs at minimum / minidl's time. Those GEMMs "
              "(forward `(M,K)@(K,N)`, dW `(N,M)@(M,K)`, dX `(M,N)@(N,K)` with M = batch x output "
              "pixels, K = C_in x kh x kw, N = C_out, for every Conv2D and Dense; no dX for a network's "
              "first layer) are timed with `numpy.matmul` into preallocated float32 arrays in the "
              "minidl worker, at the same thread setting, interleaved with the rounds. It is also "
              "minidl's GFLOP/s as a fraction of numpy's GEMM rate at exactly the case's sizes.",
              "- **GFLOP/s** counts those GEMM FLOPs only (2 M K N each).",
              "- **GEMMs / torch** = (time of those numpy GEMMs) / torch's time: the ratio minidl would "
              "reach if it spent all its time in ideal numpy GEMMs and nothing else. Above 1.5x, the "
              "<= 1.5x PyTorch target cannot be met with numpy GEMMs on this machine (PyTorch's own "
              "convolution kernels beat numpy's GEMMs at those sizes); the >= 70 % GEMM target still can.",
              "- The kernel share (sys CPU time / wall time) and minor page faults per call come from "
              "`getrusage` in minidl's worker around the timed calls; they are quoted under \"bound\" "
              "when the kernel takes over 10 % of the time (memory freshly mapped for large temporaries).",
              "- Threads \"1\": threadpoolctl limits numpy's BLAS to 1 thread (so the Trainer's "
              "`blas_threads=\"auto\"` computes its runs on that one thread), "
              "`torch.set_num_threads(1)`. Threads \"all\": no limit; minidl runs every case as the "
              "Trainer does by default (`blas_threads=\"auto\"`, `minidl.functional._engine.blas.auto_threads`: "
              "BLAS on one thread, batches of 32 MFLOP and more split into runs of samples computed on "
              "every core), against PyTorch's defaults; the rows marked `(blas_threads=None)` are "
              "minidl epochs with BLAS left at all threads and nothing split.",
              "- The stride-2 conv: minidl `padding='same'` (Keras rule, `resolve_padding` gives "
              "((0, 1), (0, 1)) for 16 -> 8 with k3 s2); torch gets the same explicit asymmetric padding "
              "with `F.pad` (inside its timed work) and `padding=0`.",
              "- Epoch cases: synthetic data (uniform [0, 1) images, random labels), SGD momentum 0.9 "
              "(lr 0.05 digits, 0.01 otherwise), cross-entropy; minidl through `Trainer.fit` (shuffled, "
              "accuracy metric), torch a plain loop. The CIFAR-shaped CNN uses 'same' padding "
              "(Dense 4096 -> 10).",
              f"- \"overhead-bound\": under {OVERHEAD_S * 1e3:.0f} ms per call or per training batch "
              "with less than 60 % of the time in GEMMs; \"GEMM-bound\": >= 60 %.",
              "- `mnist_predict`: a fresh process per framework and thread setting; peak RSS is its "
              "`ru_maxrss` (includes the 180 MiB input and, for torch, the torch library itself); torch "
              "under `torch.no_grad()`, batch 256; minidl `Trainer.predict(batch_size=256)` (its "
              "default blas_threads=\"auto\").", ""]
    for threads in dict.fromkeys(r["threads"] for r in rows):
        lines += [f"## Threads: {threads}", "",
                  "| case | minidl (spread) | torch (spread) | minidl / torch | GFLOP/s | % GEMM | GEMMs / torch "
                  "| target | bound (measured) |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [_md_row(r) for r in rows if r["threads"] == threads]
        lines.append("")
    lines += ["## Cases", ""] + [f"- `{k}`: {v['title']}" for k, v in bc.CASES.items()] + [""]
    if args.quick:
        lines += ["(--quick: " + ", ".join(f"{k} over {bc.case_size(k, True)[0]} images" for k, v in bc.CASES.items()
                                           if v.get("quick_n")) + ")", ""]
    missed = [r for r in rows if "MISS" in r["target"] and not r["target"].startswith("(info)")]
    missed += [r for r in rows if "rss" in r and r["rss"]["minidl"] >= 1024]
    lines += ["## Targets missed", ""]
    lines += [f"- {r['case']} [threads {r['threads']}]: {r['target']}"
              + (f"; ratio {r['ratio']:.2f}x" if "ratio" in r else "")
              + (f", {r['pct_gemm']:.0%} GEMM" if r["pct_gemm"] else "") for r in missed] or ["- none"]
    return "\n".join(lines) + "\n"
