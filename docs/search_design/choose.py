"""Phase 3a: robust selection on seeds 10-11 from out/sweep2.json (neighbourhood-averaged hit rate)."""
import json, sys
from collections import defaultdict
import numpy as np

rows = json.load(open("/tmp/design/out/sweep2.json"))
KEYS = ("anchor", "a", "b", "step", "b0", "eta", "rmax", "smooth", "tau")
idx = {tuple(r["params"][k] for k in KEYS): r for r in rows}


def key(p):
    return tuple(p[k] for k in KEYS)


def neighbours(p):
    out = []
    def mv(**kw):
        q = dict(p); q.update(kw); k = key(q)
        if k in idx and k != key(p): out.append(idx[k])
    s = p["step"]
    for d in (-s, s):
        mv(a=p["a"] + d); mv(b=p["b"] + d)
    for d in (-1, 1):
        mv(b0=p["b0"] + d)
    for eta in (0, 2, 3):
        mv(eta=eta, rmax=1 if eta == 0 else (p["rmax"] if p["eta"] else 99))
    for t in (0.0, 0.02, 0.05):
        mv(tau=t)
    for an in ("gmed", "valley", "gmean", "pair", "md10c", "min"):
        mv(anchor=an)
    return out


def robust(r, part="train"):
    nb = neighbours(r["params"])
    hits = [r[part]["hit"]] + [n[part]["hit"] for n in nb]
    return float(np.mean(hits)), float(np.min(hits)), len(nb)


if __name__ == "__main__":
    sm = sys.argv[1] if len(sys.argv) > 1 else "ema"
    R = [r for r in rows if r["params"]["smooth"] == sm]
    for cap in (0.08, 0.10, 0.125, 0.15, 0.20):
        c = [r for r in R if r["train"]["share_med"] <= cap]
        scored = sorted(c, key=lambda r: (-robust(r)[0], r["train"]["share_med"]))
        print(f"== {sm} cap {cap:.1%}: top 6 by neighbourhood-mean hit (train)")
        for r in scored[:6]:
            m, mn, n = robust(r)
            t, h, a = r["train"], r["hold"], r["all"]
            print(f"  {r['strategy']:55s} nb-mean {m:.0%} nb-min {mn:.0%} (n{n}) | train {t['hit']:.0%} fam {t['fam_min']:.0%} p90 {t['p90']:.2f} share {t['share_med']:.1%} | hold {h['hit']:.0%} p90 {h['p90']:.2f} | all {a['hit']:.0%} share {a['share_med']:.1%} max {a['share_max']:.0%}")
