#!/usr/bin/env python3
"""Side-by-side benchmark of Fulcrum against nginx (and HAProxy when installed).

Runs three phases — throughput (wrk), big bodies (256 MiB down and up), idle connections —
prints a markdown report and writes it to bench/results/<timestamp>.md. See bench/README.md.
Everything it starts lives in one temp dir and is stopped in a finally block, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from balancers import BALANCERS, REPO, Lab, find_fulcrum  # noqa: E402
from loads import IdleResult, Transfer, WrkRun, download, hold_idle, run_wrk, upload  # noqa: E402
from procs import BenchError, Children, Managed, ensure_packages, log, raise_nofile, tool_version, which  # noqa: E402

PHASES = ("throughput", "body", "idle")
DIRECT = "direct"  # body transfers straight to the backend, no balancer: the ceiling on this box
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_BODY_RATIO = 0.8
TARGET_BODY_RSS_MB = 32.0
TARGET_IDLE_KB = 4.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round of 5 s, throughput only (unless --only)")
    p.add_argument("--only", help="comma-separated phases to run: " + ", ".join(PHASES))
    p.add_argument("--connections", type=int, default=50, help="wrk connections")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=3, help="rounds of throughput runs")
    p.add_argument("--body-rounds", type=int, default=7,
                   help="rounds of big-body transfers after one warm-up round (each is short)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk per balancer before round 1")
    p.add_argument("--body-mb", type=int, default=256, help="size of the big body in MiB")
    p.add_argument("--idle-conns", type=int, default=10_000, help="idle connections to hold open")
    p.add_argument("--balancers", default="nginx,fulcrum,haproxy",
                   help="comma-separated balancers (" + ", ".join(BALANCERS) + "); haproxy is dropped when "
                        "not installed; the -edge variants run the throughput phase only")
    p.add_argument("--edge", action="store_true",
                   help="add nginx-edge and fulcrum-edge: rate limiting and an access log on")
    p.add_argument("--haproxy", action="store_true", help="install HAProxy if missing and bench it")
    p.add_argument("--workers", type=int, default=1,
                   help="processes per balancer: nginx worker_processes, Fulcrum workers, HAProxy nbthread")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--fulcrum-bin", help="fulcrum executable (default: .venv/bin/fulcrum)")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="where the markdown report goes")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.body_rounds, args.duration = 1, 1, 5.0
    default_phases = "throughput" if args.quick else ",".join(PHASES)
    args.phases = [x.strip() for x in (args.only or default_phases).split(",") if x.strip()]
    args.balancers = [x.strip() for x in args.balancers.split(",") if x.strip()]
    if args.edge:
        args.balancers += [b for b in ("nginx-edge", "fulcrum-edge") if b not in args.balancers]
    for name, allowed, what in ((args.phases, PHASES, "--only"), (args.balancers, BALANCERS, "--balancers")):
        bad = [x for x in name if x not in allowed]
        if bad:
            p.error(f"{what}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    return args


# --- phases ------------------------------------------------------------------------------------


def phase_throughput(lab: Lab, names: list[str], backends: list[int], args) -> list[WrkRun]:
    started = {name: lab.start_balancer(name, backends) for name in names}
    try:
        for name, child in started.items():
            if args.warmup > 0:
                log(f"warm-up {name} ({args.warmup:g} s)")
                run_wrk(child, 0, args.connections, args.warmup, args.threads)
        runs = []
        for round_no in range(1, args.rounds + 1):
            for name, child in started.items():
                run = run_wrk(child, round_no, args.connections, args.duration, args.threads)
                log(f"round {round_no} {name}: {run.rps:,.0f} req/s, p99 {run.p99_ms:.2f} ms, "
                    f"{run.cpu_us_per_req:.1f} µs CPU/req")
                runs.append(run)
        return runs
    finally:
        for child in started.values():
            lab.children.stop(child)


def _transfers(lab: Lab, names: list[str], server: Managed, direction: str, args) -> list[Transfer]:
    """Each round: the body straight from `server` (the ceiling), then through each balancer."""
    size = args.body_mb << 20
    started = {name: lab.start_balancer(name, [server.port]) for name in names}
    targets = {DIRECT: dataclasses.replace(server, name=DIRECT), **started}
    try:
        out = []
        for round_no in range(0, args.body_rounds + 1):  # round 0 warms up: RSS counts, its rate does not
            for name, child in targets.items():
                if direction == "download":
                    t = download(child, round_no, "/big", size)
                else:
                    t = upload(child, round_no, "/upload", size)
                what = "warm-up" if round_no == 0 else str(round_no)
                log(f"{direction} {what} {name}: {t.mb_per_s:,.0f} MB/s, CPU {t.cpu_percent:.0f}%, "
                    f"RSS +{t.rss_growth_mb:.1f} MB")
                out.append(t)
        return out
    finally:
        for child in started.values():
            lab.children.stop(child)


def phase_body(lab: Lab, names: list[str], backend: Managed, args) -> tuple[list[Transfer], str]:
    transfers = _transfers(lab, names, backend, "download", args)
    sink, why = lab.start_upload_sink()
    if sink is None:
        note = f"upload skipped: no upload backend ({why})"
        log(note)
        return transfers, note
    try:
        transfers += _transfers(lab, names, sink, "upload", args)
    finally:
        lab.children.stop(sink)
    return transfers, ""


def phase_idle(lab: Lab, names: list[str], backends: list[int], args) -> list[IdleResult]:
    results = []
    for name in names:
        child = lab.start_balancer(name, backends, idle=True)
        try:
            # Start-up work that outlasts "ready" (Fulcrum imports its admin API off the loop,
            # ~15 MB) must not be counted as the connections' memory.
            time.sleep(3.0)
            log(f"idle: opening {args.idle_conns} connections to {name}")
            r = hold_idle(child, args.idle_conns)
            log(f"idle {name}: {r.accepted} accepted, {r.kb_per_conn:.2f} KB/conn")
            results.append(r)
        finally:
            lab.children.stop(child)
    return results


# --- report ------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if a == a and b == b and b else "n/a"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _environment(args, names: list[str]) -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "?")
    versions = [f"nginx {tool_version([which('nginx') or 'nginx', '-v']).split('/')[-1]}",
                f"wrk {tool_version([which('wrk') or 'wrk', '-v']).split()[1] if which('wrk') else '?'}",
                f"Python {platform.python_version()}"]
    if "haproxy" in names:
        versions.append(f"HAProxy {tool_version([which('haproxy') or 'haproxy', '-v']).split()[2]}")
    if "fulcrum" in names:
        out = subprocess.run([find_fulcrum(args.fulcrum_bin), "version"], capture_output=True, text=True,
                             timeout=30, env={**os.environ}).stdout.split()  # "fulcrum X core: KIND"
        versions.append(f"fulcrum {out[1]} ({out[-1]} core)" if len(out) == 4 else "fulcrum ?")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "no commit yet"
    return [
        f"- Box: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}; {', '.join(versions)}; "
        f"repo at {commit}.",
        f"- All processes — the backend nginx (1 worker), every balancer ({args.workers} worker(s) each; idle ones stay "
        f"running while another is measured), wrk and this script's own client — run at once on this same "
        f"{os.cpu_count()}-core box, unpinned. Compare balancers with each other; these are not capacities.",
        f"- 1-minute load average: {args.load_before:.2f} before the bench, {os.getloadavg()[0]:.2f} after "
        f"(the bench itself adds up to ~2; anything above ~0.5 before means other work was running).",
    ]


def _paired_ratios(runs: list[WrkRun], names: list[str]) -> list[str]:
    """Ratios to nginx within each round (the runs a few seconds apart), then their
    median: steadier on a shared box than the ratio of two medians. An -edge variant
    is compared with nginx-edge (the same features on) when that ran."""
    lines = []
    for n in names:
        base = "nginx-edge" if n.endswith("-edge") and "nginx-edge" in names else "nginx"
        if n == base:
            continue
        rps, cpu = [], []
        for r in runs:
            ref = next((x for x in runs if x.balancer == base and x.round == r.round), None)
            if r.balancer == n and ref is not None and ref.rps and ref.cpu_us_per_req:
                rps.append(r.rps / ref.rps)
                cpu.append(r.cpu_us_per_req / ref.cpu_us_per_req)
        if rps:
            lines.append(f"- {n}: per-round ratio to {base}, median — req/s {_median(rps):.2f}×, "
                         f"CPU/req {_median(cpu):.2f}× (rounds: {', '.join(f'{x:.2f}' for x in rps)})")
    return lines


def report(args, names: list[str], runs: list[WrkRun], transfers: list[Transfer], body_note: str,
           idle: list[IdleResult]) -> str:
    out = [f"# Fulcrum bench — {datetime.now():%Y-%m-%d %H:%M:%S}", ""] + _environment(args, names) + [""]
    targets: list[str] = []

    if runs:
        out += [f"## Throughput — `wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency`, "
                f"{args.rounds} round(s), medians", ""]
        med = {n: {k: _median([getattr(r, k) for r in runs if r.balancer == n])
                   for k in ("rps", "p99_ms", "cpu_us_per_req")} for n in names}
        ref = med.get("nginx")
        rows = []
        for n in names:
            errs = sum(r.socket_errors + r.non_2xx for r in runs if r.balancer == n)
            rows.append([n, f"{med[n]['rps']:,.0f}", f"{med[n]['p99_ms']:.2f} ms", f"{med[n]['cpu_us_per_req']:.1f}",
                         _ratio(med[n]["rps"], ref["rps"]) if ref else "n/a",
                         _ratio(med[n]["cpu_us_per_req"], ref["cpu_us_per_req"]) if ref else "n/a", str(errs)])
        out += _table(["balancer", "req/s", "p99", "CPU µs/req", "req/s vs nginx", "CPU/req vs nginx",
                       "errors (socket + non-2xx)"], rows)
        out += [""] + _paired_ratios(runs, names) + ["", "Every run:", ""]
        out += _table(["round", "balancer", "req/s", "p99", "CPU s", "CPU µs/req", "requests", "errors"],
                      [[str(r.round), r.balancer, f"{r.rps:,.0f}", f"{r.p99_ms:.2f} ms", f"{r.cpu_s:.2f}",
                        f"{r.cpu_us_per_req:.1f}", f"{r.requests:,}", str(r.socket_errors + r.non_2xx)]
                       for r in runs]) + [""]

    plain = [n for n in names if not n.endswith("-edge")]  # the -edge variants run throughput only
    if "body" in args.phases:
        out += [f"## Big body — {args.body_mb} MiB through each balancer, {args.body_rounds} round(s), medians", ""]
        each = {(n, d): [t.mb_per_s for t in transfers if t.balancer == n and t.direction == d and t.round]
                for n in [DIRECT, *plain] for d in ("download", "upload")}
        rate = {key: _median(values) for key, values in each.items()}

        def spread(key) -> str:
            values = each[key]
            return f"{rate[key]:,.0f} ({min(values):,.0f}–{max(values):,.0f})" if values else "—"

        rows = []
        for n in [DIRECT, *plain]:
            mine = [t for t in transfers if t.balancer == n]
            growth = max((t.rss_growth_mb for t in mine), default=float("nan"))
            before = mine[0].rss_before_mb if mine else float("nan")
            cpu = [_median([t.cpu_percent for t in mine if t.round and t.direction == d]) for d in ("download", "upload")]
            rss = ["—", "—", "—"] if n == DIRECT else [f"{cpu[0]:.0f} / {cpu[1]:.0f}", f"{before:.1f}", f"{growth:.1f}"]
            rows.append([f"{n} (no balancer)" if n == DIRECT else n,
                         spread((n, "download")), spread((n, "upload")),
                         _ratio(rate[n, "download"], rate.get(("nginx", "download"), float("nan"))),
                         _ratio(rate[n, "upload"], rate.get(("nginx", "upload"), float("nan"))), *rss])
        out += _table(["balancer", "download MB/s (min–max)", "upload MB/s (min–max)", "download vs nginx",
                       "upload vs nginx", "balancer CPU % down / up", "RSS before (MB)", "peak RSS growth (MB)"], rows)
        out += [""] + ([f"_{body_note}_", ""] if body_note else [])
        if "fulcrum" in names and "nginx" in names:
            for d in ("download", "upload"):
                f, n = rate["fulcrum", d], rate["nginx", d]
                targets.append(_target(f"{d} rate Fulcrum/nginx ≥ {TARGET_BODY_RATIO}", f / n if n == n and n else None,
                                       TARGET_BODY_RATIO, higher=True,
                                       detail=f"Fulcrum {f:,.0f} MB/s, nginx {n:,.0f} MB/s",
                                       skipped=body_note if d == "upload" else ""))
        if "fulcrum" in names:
            growth = max((t.rss_growth_mb for t in transfers if t.balancer == "fulcrum"), default=None)
            targets.append(_target(f"Fulcrum RSS growth during a {args.body_mb} MiB body ≤ {TARGET_BODY_RSS_MB:g} MB",
                                   growth, TARGET_BODY_RSS_MB, higher=False, detail=f"{growth or 0:.1f} MB"))

    if idle:
        out += [f"## Idle connections — {args.idle_conns:,} TCP connections that send nothing", ""]
        out += _table(["balancer", "accepted", "RSS before (MB)", "RSS after (MB)", "KB per connection"],
                      [[r.balancer, f"{r.accepted:,}", f"{r.rss_before_mb:.1f}", f"{r.rss_after_mb:.1f}",
                        f"{r.kb_per_conn:.2f}"] for r in idle]) + [""]
        mine = next((r for r in idle if r.balancer == "fulcrum"), None)
        if mine:
            short = f" (only {mine.accepted:,} of {mine.wanted:,} accepted)" if mine.accepted < mine.wanted else ""
            targets.append(_target(f"Fulcrum memory per idle connection ≤ {TARGET_IDLE_KB:g} KB",
                                   mine.kb_per_conn if mine.accepted == mine.wanted else None, TARGET_IDLE_KB,
                                   higher=False, detail=f"{mine.kb_per_conn:.2f} KB{short}"))

    if targets:
        out += ["## Targets", ""] + targets + [""]
    return "\n".join(out)


def _target(what: str, value: float | None, limit: float, higher: bool, detail: str, skipped: str = "") -> str:
    if skipped:
        return f"- SKIPPED — {what}: {skipped}"
    if value is None or value != value:
        return f"- MISSED — {what}: no valid measurement ({detail})"
    met = value >= limit if higher else value <= limit
    shown = f"{value:.2f}" if higher else detail
    return f"- {'MET' if met else 'MISSED'} — {what}: {shown}" + (f" ({detail})" if higher else "")


# --- main ----------------------------------------------------------------------------------------


def _select_balancers(args) -> list[str]:
    ensure_packages(["nginx", "wrk"] + (["haproxy"] if args.haproxy else []))
    names = [n for n in BALANCERS if n in args.balancers]
    if "haproxy" in names and which("haproxy") is None:
        log("HAProxy is not installed; skipping it (--haproxy installs it)")
        names.remove("haproxy")
    if "fulcrum" in names:
        find_fulcrum(args.fulcrum_bin)
    return names


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    nofile = raise_nofile(2 * args.idle_conns + 4096)
    # Fulcrum admits a client only while the fd limit keeps one descriptor free for its backend
    # connection, plus a reserve (runtime/fd_budget.py): 2 per client. Every balancer holds
    # the same number, what fits that budget, or the idle phase would measure no valid figure.
    fits = max(0, (nofile - 256) // 2)
    if "idle" in args.phases and fits < args.idle_conns:
        args.idle_conns = fits
        log(f"fd limit is {nofile}; holding only {args.idle_conns} idle connections "
            f"(2 descriptors each in Fulcrum's budget)")
    args.load_before = os.getloadavg()[0]
    if args.load_before > 0.5:
        log(f"load average is {args.load_before:.2f}: other work on this box will skew the numbers")
    tmp = Path(tempfile.mkdtemp(prefix="fulcrum-bench-"))
    children = Children(tmp)
    try:
        names = _select_balancers(args)
        lab = Lab(tmp, children, args.fulcrum_bin, nofile, args.workers)
        backend, backends = lab.start_backends(args.body_mb << 20)
        log(f"backends: nginx on 127.0.0.1:{backends[0]} and :{backends[1]}; balancers: {', '.join(names)}")
        runs, transfers, body_note, idle = [], [], "", []
        started = time.monotonic()
        if "throughput" in args.phases:
            runs = phase_throughput(lab, names, backends, args)
        if "body" in args.phases:
            transfers, body_note = phase_body(lab, [n for n in names if not n.endswith("-edge")], backend, args)
        if "idle" in args.phases:
            idle = phase_idle(lab, [n for n in names if not n.endswith("-edge")], backends, args)
        text = report(args, names, runs, transfers, body_note, idle)
        text += f"\n_Bench took {time.monotonic() - started:.0f} s._\n"
        print(text)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        path = args.results_dir / f"{datetime.now():%Y%m%d-%H%M%S}.md"
        path.write_text(text)
        log(f"report written to {path}")
        return 0
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        children.stop_all()
        if args.keep_tmp:
            log(f"kept temp dir {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
