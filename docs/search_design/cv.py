"""Leave-one-seed-out check of the selection procedure (choose on two seeds, score the third).

Selection rule (the same as on seeds 10-11): among strategies whose median search share on the
choosing seeds is <= CAP, take the best neighbourhood-mean hit rate (itself + one-notch neighbours),
ties by cost. Reported: the chosen strategy per fold and its hit rate on the left-out seed."""
import json, sys
import numpy as np

SM = sys.argv[1] if len(sys.argv) > 1 else "ema"
z = np.load(f"/tmp/design/out/sweep3_{SM}.npz")
labels, regret, steps, g13, seed, fam = z["labels"], z["regret"], z["steps"], z["grid13"], z["seed"], z["family"]
params = [json.loads(p) for p in z["params"]]
KEYS = ("anchor", "a", "b", "step", "b0", "eta", "rmax", "smooth", "tau")
index = {tuple(p[k] for k in KEYS): i for i, p in enumerate(params)}
hits = regret <= 1.5
share = steps / g13


def nbrs(i):
    p = params[i]; out = []
    def mv(**kw):
        q = dict(p); q.update(kw); k = tuple(q[x] for x in KEYS)
        if k in index and index[k] != i: out.append(index[k])
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


NB = [nbrs(i) for i in range(len(params))]


def pick(mask, cap):
    h = hits[:, mask].mean(axis=1)
    sh = np.median(share[:, mask], axis=1)
    ok = np.where(sh <= cap)[0]
    score = np.array([np.mean([h[i]] + [h[j] for j in NB[i]]) for i in ok])
    order = sorted(range(len(ok)), key=lambda j: (-score[j], sh[ok[j]]))
    return ok[order[0]], score[order[0]]


if __name__ == "__main__":
    for cap in (0.08, 0.10, 0.125, 0.15, 0.20):
        tot_hit, tot_n, lines = 0, 0, []
        for s in (10, 11, 12):
            tr, te = seed != s, seed == s
            i, sc = pick(tr, cap)
            tot_hit += hits[i, te].sum(); tot_n += te.sum()
            lines.append(f"    fold seed {s}: {labels[i]:55s} choose-hit {hits[i, tr].mean():.0%} "
                         f"-> left-out {hits[i, te].mean():.0%} share {np.median(share[i, te]):.1%}")
        print(f"cap {cap:.1%}: leave-one-seed-out hit {tot_hit / tot_n:.1%} ({tot_hit}/{tot_n})")
        print("\n".join(lines))
