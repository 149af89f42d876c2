#!/usr/bin/env python3
"""Turns bench/run.sh's raw measurements into the Markdown section of bench/RESULTS.md.

The section sits between two marker comments; everything else in the file (other
benchmarks, the notes written by hand) is left as it is. Figures are medians over the
runs (with two runs, the mean of the two).
"""

import argparse
import csv
import datetime
import statistics
import sys
from pathlib import Path

BEGIN = "<!-- bench/run.sh: generated section begins; rerun the script to replace it -->"
END = "<!-- bench/run.sh: generated section ends -->"
HEADING = "## gatehouse, Django and this machine's ceiling (`bench/run.sh`)"
SCENARIOS = ["me", "login", "register", "refresh", "mixed"]
SERVERS = ["ceiling", "gatehouse", "django"]


def load(path):
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    for row in rows:
        for key in ("rps", "p50_ms", "p99_ms"):
            row[key] = float(row[key])
        for key in ("errors", "requests", "rss_idle_kib", "rss_peak_kib"):
            row[key] = int(row[key])
    return rows


def hash_timings(paths):
    """The hash timings' keys; a number is the median over the timings, so the limit comes
    from the same minutes as the logins it is compared with. `verify_cpu_ms_each` lists
    every timing of a verification."""
    timings = [dict(line.split(" ", 1) for line in Path(p).read_text().splitlines() if " " in line)
               for p in sorted(paths)]
    info = dict(timings[0])
    # Only the times and the limits vary; the parameters, cores and pool size do not.
    for key in [k for k in info if k.endswith("_ms") or "_ms_" in k or k.endswith("_per_s")]:
        try:
            info[key] = str(statistics.median(float(t[key]) for t in timings if key in t))
        except (ValueError, statistics.StatisticsError):
            continue
    info["verify_cpu_ms_each"] = ", ".join(t.get("verify_cpu_ms", "?") for t in timings)
    info["timings"] = str(len(timings))
    return info


def medians(rows):
    """(server, scenario) → the median of each figure over the runs."""
    out = {}
    for server in SERVERS:
        for scenario in SCENARIOS:
            mine = [r for r in rows if r["server"] == server and r["scenario"] == scenario]
            if not mine:
                continue
            out[server, scenario] = {
                key: statistics.median(r[key] for r in mine)
                for key in ("rps", "p50_ms", "p99_ms", "errors", "requests", "rss_idle_kib", "rss_peak_kib")
            } | {"runs": len(mine)}
    return out


def mib(kib):
    return f"{kib / 1024:.0f}"


def num(x, digits=1):
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ratio(a, b):
    return a / b if b else float("nan")


def section(args, rows, med, hash_info, versions):
    out = []
    w = out.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    w(HEADING)
    w("")
    w(BEGIN)
    w("")
    w(f"Run on {now}, {args.runs} run(s) of {args.duration} s per scenario, "
      f"wrk `-t{args.threads} -c{args.connections} --timeout 30s`, {args.elapsed // 60} min "
      f"{args.elapsed % 60} s in all. Command:")
    w("")
    w("```sh")
    env = []
    if args.duration != 15:
        env.append(f"DURATION={args.duration}")
    if args.runs != 2:
        env.append(f"RUNS={args.runs}")
    if args.gatehouse_env:
        env.append(f"GATEHOUSE_ENV='{args.gatehouse_env}'")
    w(" ".join(env + ["bash bench/run.sh"]))
    w("```")
    w("")
    for line in versions:
        w(f"- {line}")
    w("")
    w("Medians over the runs. Memory is the resident set of the server and all its processes")
    w("(Django: gunicorn's master and workers, whose shared pages are counted once per process),")
    w("idle after start-up and the scenario's set-up, and at its peak during the measurement.")
    w("")
    w("| scenario | server | requests/s | p50 ms | p99 ms | errors | RSS idle MiB | RSS peak MiB |")
    w("|---|---|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        for server in SERVERS:
            m = med.get((server, scenario))
            if not m:
                continue
            # wrk reports no latency when no request completed in the measurement.
            p50, p99 = ((f"{m['p50_ms']:.2f}", f"{m['p99_ms']:.2f}") if m["requests"]
                        else (f"> {args.duration * 1000}", f"> {args.duration * 1000}"))
            w(f"| {scenario} | {server} | {num(m['rps'])} | {p50} | {p99} | "
              f"{m['errors']:.0f} | {mib(m['rss_idle_kib'])} | {mib(m['rss_peak_kib'])} |")
    w("")

    g = lambda s: med.get(("gatehouse", s))
    d = lambda s: med.get(("django", s))
    c = med.get(("ceiling", "me"))
    cores = int(hash_info.get("cores", 0))
    pool = int(hash_info.get("hash_pool", 0))
    verify_ms = float(hash_info.get("verify_cpu_ms", "nan"))
    hash_ms = float(hash_info.get("hash_cpu_ms", "nan"))
    login_limit = cores * 1000 / verify_ms
    register_limit = cores * 1000 / hash_ms
    # With every core hashing at once, as in a login flood (examples/hash_time.rs); shown
    # beside the targets, which keep the one-at-a-time limit. Older output lacks it.
    verify_all_ms = float(hash_info.get("verify_cpu_ms_all_cores", "nan"))
    hash_all_ms = float(hash_info.get("hash_cpu_ms_all_cores", "nan"))
    login_all = cores * 1000 / verify_all_ms
    register_all = cores * 1000 / hash_all_ms
    hash_mib = float(hash_info.get("hash_memory_mib", "19"))

    w(f"Argon2id at gatehouse's parameters ({hash_info.get('params', '?')}), measured in-process "
      + (f"by `examples/hash_time.rs` at the start and again before each run's `login` (a "
         f"verification took {hash_info['verify_cpu_ms_each']} ms of CPU, in that order): medians "
         if int(hash_info["timings"]) > 1 else "by `examples/hash_time.rs` at the start: ")
      + f"{hash_ms:.1f} ms of CPU per hash, {verify_ms:.1f} ms per verification. With {cores} "
      f"cores that allows at most {login_limit:.1f} logins/s (cores ÷ CPU time per verification) and {register_limit:.1f} registrations/s. "
      f"gatehouse's hash pool: {pool} at a time.")
    if verify_all_ms == verify_all_ms:  # measured (not NaN)
        w("")
        w(f"With all {cores} cores hashing at once, as in a login flood, the same operations took "
          f"{hash_all_ms:.1f} ms of CPU per hash and {verify_all_ms:.1f} ms per verification: "
          f"{login_all:.1f} logins/s and {register_all:.1f} registrations/s at most. The targets "
          f"below keep the one-at-a-time limit; the all-cores one is shown beside it.")
    w("")
    w("Targets (issue #8), from this run:")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")

    def all_cores(rps, limit):
        return f"; {rps / limit:.2f} × the all-cores {limit:.1f}/s" if limit == limit else ""

    def target(text, value, ok):
        w(f"| {text} | {value} | {'yes' if ok else '**no**'} |")

    if g("me") and c:
        r = ratio(g("me")["rps"], c["rps"])
        target("`me` ≥ 0.4 × ceiling's requests/s", f"{r:.2f} ×", r >= 0.4)
        r = ratio(g("me")["p99_ms"], c["p99_ms"])
        target("`me` p99 ≤ 2 × ceiling's p99", f"{r:.2f} × ({g('me')['p99_ms']:.2f} vs {c['p99_ms']:.2f} ms)", r <= 2)
    if g("me") and d("me"):
        r = ratio(g("me")["rps"], d("me")["rps"])
        target("`me` ≥ 50 × Django's requests/s", f"{r:.0f} ×", r >= 50)
    if g("mixed"):
        target("`mixed`: `me` p99 < 25 ms during a login flood", f"{g('mixed')['p99_ms']:.2f} ms",
               g("mixed")["p99_ms"] < 25)
        if g("me"):
            r = ratio(g("mixed")["rps"], g("me")["rps"])
            target("`mixed`: `me` keeps ≥ 1/3 of its solo requests/s", f"{r:.2f}", r >= 1 / 3)
    if d("mixed"):
        seen = (f"{d('mixed')['p99_ms']:.0f} ms" if d("mixed")["requests"]
                else f"no request answered within the {args.duration} s measured")
        w(f"| (Django's `me` p99 during its login flood) | {seen} | — |")
    if g("login"):
        r = g("login")["rps"] / login_limit
        target("`login` ≥ 0.85 × the hash limit",
               f"{r:.2f} × ({g('login')['rps']:.1f} of {login_limit:.1f}/s)"
               + all_cores(g("login")["rps"], login_all), r >= 0.85)
    if g("register"):
        r = g("register")["rps"] / register_limit
        target("`register` ≥ 0.85 × the hash limit",
               f"{r:.2f} × ({g('register')['rps']:.1f} of {register_limit:.1f}/s)"
               + all_cores(g("register")["rps"], register_all), r >= 0.85)
    if g("refresh") and d("refresh"):
        r = ratio(g("refresh")["rps"], d("refresh")["rps"])
        target("`refresh` ≥ 20 × Django's requests/s", f"{r:.0f} ×", r >= 20)
    if g("me"):
        peak = g("me")["rss_peak_kib"] / 1024
        target("memory under the `me` load < 64 MiB", f"{peak:.0f} MiB", peak < 64)
    if g("login"):
        idle = g("login")["rss_idle_kib"] / 1024
        peak = g("login")["rss_peak_kib"] / 1024
        bound = idle + hash_mib * pool + 16
        target(f"memory under a login flood ≤ idle + {hash_mib:.0f} MiB × pool ({pool}) + 16 MiB",
               f"{peak:.0f} MiB (idle {idle:.0f}, bound {bound:.0f})", peak <= bound)
    w("")

    w("gatehouse ÷ Django and gatehouse ÷ ceiling, requests/s (p99 latency in brackets):")
    w("")
    w("| scenario | gatehouse ÷ Django | gatehouse ÷ ceiling |")
    w("|---|---:|---:|")
    for scenario in SCENARIOS:
        if not g(scenario):
            continue
        vs_d = (f"{ratio(g(scenario)['rps'], d(scenario)['rps']):.1f} × "
                f"({ratio(g(scenario)['p99_ms'], d(scenario)['p99_ms']):.3f} ×)") if d(scenario) else "—"
        vs_c = (f"{ratio(g(scenario)['rps'], c['rps']):.2f} × "
                f"({ratio(g(scenario)['p99_ms'], c['p99_ms']):.2f} ×)") if c and scenario in ("me", "mixed") else "—"
        w(f"| {scenario} | {vs_d} | {vs_c} |")
    w("")

    w("<details><summary>Every run</summary>")
    w("")
    w("| run | server | scenario | requests/s | p50 ms | p99 ms | errors | requests | RSS idle MiB | RSS peak MiB |")
    w("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        w(f"| {r['run']} | {r['server']} | {r['scenario']} | {num(r['rps'])} | {r['p50_ms']:.2f} | "
          f"{r['p99_ms']:.2f} | {r['errors']} | {r['requests']} | {mib(r['rss_idle_kib'])} | {mib(r['rss_peak_kib'])} |")
    w("")
    w("</details>")
    w("")
    w(END)
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True)
    p.add_argument("--hash", required=True, nargs="+",
                   help="examples/hash_time.rs outputs: one at the start, one before each run's login")
    p.add_argument("--versions", required=True)
    p.add_argument("--duration", type=int, required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--elapsed", type=int, required=True)
    p.add_argument("--gatehouse-env", default="")
    p.add_argument("--results", required=True)
    args = p.parse_args()

    rows = load(args.raw)
    hash_info = hash_timings(args.hash)
    versions = [line for line in Path(args.versions).read_text().splitlines() if line]
    text = section(args, rows, medians(rows), hash_info, versions)

    if args.results == "-":
        sys.stdout.write(text)
        return
    path = Path(args.results)
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in old and END in old:
        # Replace from the heading (the line before BEGIN's block) to END.
        start = old.index(HEADING) if HEADING in old else old.index(BEGIN)
        stop = old.index(END) + len(END) + 1
        new = old[:start] + text + old[stop:]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


if __name__ == "__main__":
    main()
