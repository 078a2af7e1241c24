"""Picks the draft to ship among trained variants: the one that agrees best with the target
(held-out scripture top-1) among those the target beats by at least --margin in held-out
perplexity, on scripture and over all domains (token-weighted). Prints the chosen variant's
name; each variant's ratios go to stderr.

    python3 select_draft.py MODELS_DIR VARIANT [VARIANT ...]   # reads MODELS_DIR/VARIANT/metrics.json
"""
import argparse
import json
import math
import sys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models")
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--margin", type=float, default=1.18, help="draft/target perplexity ratio at least")
    args = ap.parse_args()
    best = None
    for v in args.variants:
        h = json.load(open(f"{args.models}/{v}/metrics.json"))["heldout"]
        n = sum(h[d]["tokens"] for d in h)
        tot = {k: sum(h[d]["tokens"] * math.log(h[d][k]) for d in h) / n for k in ("ppl_target", "ppl_draft")}
        r_all = math.exp(tot["ppl_draft"] - tot["ppl_target"])
        r_s = h["scripture"]["ppl_draft"] / h["scripture"]["ppl_target"]
        ok = r_all >= args.margin and r_s >= args.margin
        key = (ok, h["scripture"]["top1"] if ok else min(r_all, r_s))
        print(v, round(r_all, 4), round(r_s, 4), h["scripture"]["top1"], ok, file=sys.stderr)
        if best is None or key > best[0]:
            best = (key, v)
    print(best[1])


if __name__ == "__main__":
    main()
