#!/usr/bin/env python3
"""The report of bench/run_data_wait_ab.sh: per binary, the medians of
bench/data_wait.py's figures over rounds with their range (min-max), from
DIR/base-N.json and DIR/cand-N.json (data_wait.py --json, --repeat 1 each),
and where the stream mode's time goes. Standard library only.

  bench/data_wait_ab_report.py DIR
"""

import glob
import json
import os
import sys


def med(xs):
    return sorted(xs)[(len(xs) - 1) // 2]  # the lower median of an even count


def span(xs, pct=True):
    f = (lambda x: f"{x * 100:.1f}%") if pct else (lambda x: f"{x:.0f}")
    return f"{f(med(xs))} ({f(min(xs))}–{f(max(xs))})"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = {w: [json.load(open(p)) for p in sorted(glob.glob(os.path.join(sys.argv[1], f"{w}-*.json")))]
            for w in ("base", "cand")}
    if not runs["base"] or len(runs["base"]) != len(runs["cand"]):
        sys.exit(f"{sys.argv[1]}: expected as many base-N.json as cand-N.json, and some")
    names = {"base": "baseline", "cand": "candidate"}
    print(f"{len(runs['cand'])} rounds; medians (range)")
    print()
    print("| setting | binary | direct | staged | stream | seq. read MB/s | bound | stream / bound "
          "| stream vs baseline stream |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    settings = runs["cand"][0]["settings"]
    for s in settings:
        base_stream = med([r["utilisation"] for d in runs["base"] for r in d["all"]
                           if r["setting"] == s["name"] and r["mode"] == "stream"])
        for w in ("base", "cand"):
            rows = [r for d in runs[w] for r in d["all"] if r["setting"] == s["name"]]
            u = {m: [r["utilisation"] for r in rows if r["mode"] == m]
                 for m in ("direct", "staged", "stream")}
            reads = [r for r in rows if r["mode"] == "read"]
            ratios = [st / rd["bound"] for st, rd in zip(u["stream"], reads)]
            print(f"| {s['name']} | {names[w]} | {span(u['direct'])} | {span(u['staged'])} | "
                  f"{span(u['stream'])} | {span([r['tier_mb_s'] for r in reads], False)} | "
                  f"{span([r['bound'] for r in reads])} | {span(ratios)} | "
                  f"{med(u['stream']) / base_stream:.3f}x |")
    print()
    print("Where the stream mode's time goes (medians over rounds, ms after the resume): the")
    print("trainer launched; its code running; its waits in open_shard; its compute; from its")
    print("last line to the attempt's end; the total.")
    print()
    print("| setting | binary | launched | code runs | waits | compute | after | total |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for s in settings:
        for w in ("base", "cand"):
            rows = [r for d in runs[w] for r in d["all"]
                    if r["setting"] == s["name"] and r["mode"] == "stream"]

            def ms(field):
                values = [r[field] for r in rows if r.get(field) is not None]
                return f"{med(values) * 1000:.0f}" if values else "-"

            print(f"| {s['name']} | {names[w]} | {ms('start_s')} | {ms('trainer_code_s')} | "
                  f"{ms('helper_wait_s')} | {ms('compute_s')} | {ms('after_trainer_s')} | "
                  f"{ms('total_s')} |")


if __name__ == "__main__":
    main()
