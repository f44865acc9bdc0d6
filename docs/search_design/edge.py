"""Edge expansion: when the first decided rung's best candidate is the bracket's highest (lowest)
trained LR, add `add` grid points beyond it at the same epochs and rescore, up to `limit` decades.

    cd /tmp/design && /tmp/design-venv/bin/python edge.py
"""
import math
import pathlib
import sys
from dataclasses import dataclass, replace

import numpy as np

import simulate as S

STUDY = sorted(pathlib.Path("/tmp/design/study").iterdir())[-1]
PS = S.load(STUDY)


@dataclass(frozen=True)
class Edge:
    add: int = 2  # grid points added per expansion
    limit: float = 2.0  # decades beyond the bracket, at most
    up: bool = True
    down: bool = True


def race(p, cands, st, edge):
    s, E = st.smooth, p.E
    surv = sorted(cands, key=lambda t: t.lr)
    b, r, cost, at_E = st.b0, 0, 0, False
    lo0, hi0 = S.qk(surv[0].lr), S.qk(surv[-1].lr)
    while len(surv) > 1:
        b = min(b, E)
        cost += sum(int(t.cost[b]) for t in surv)
        at_E = b == E
        if st.tau and b < min(E, st.ext_max) and r == 0:
            fin = [t.M[s][b] for t in surv if math.isfinite(t.M[s][b])]
            if len(fin) > 1 and float(np.median(fin)) <= (1 + st.tau) * min(fin):
                surv = [t for t in surv if math.isfinite(t.M[s][b])]
                b *= 2
                continue
        if r == 0 and edge is not None:  # the first decided rung: expand while the best is an edge
            while True:
                fin = [t for t in surv if math.isfinite(t.M[s][b])]
                if not fin:
                    break
                best = min(fin, key=lambda t: (t.M[s][b], t.lr))
                hi, lo = S.qk(surv[-1].lr), S.qk(surv[0].lr)
                step = round(4 * st.step)
                new = []
                if edge.up and best is surv[-1]:
                    new = [k for k in range(hi + step, hi + step * edge.add + 1, step)
                           if k <= S.KMAX and k - hi0 <= 4 * edge.limit]
                elif edge.down and best is surv[0]:
                    new = [k for k in range(lo - step * edge.add, lo, step)
                           if k >= S.KMIN and lo0 - k <= 4 * edge.limit]
                if not new:
                    break
                add = [p.grid[k] for k in new]
                cost += sum(int(t.cost[b]) for t in add)
                surv = sorted(surv + add, key=lambda t: t.lr)
        r += 1
        last = st.eta == 0 or r >= st.rmax or b >= E
        keep = 1 if last else max(1, len(surv) // st.eta)
        ranked = sorted(surv, key=lambda t: (t.M[s][b], t.lr))
        surv = ranked[:keep]
        b = b * (st.eta if st.eta else 1)
    return surv[0], cost, r, at_E, 0


def simulate(p, st, edge):
    cands, fb = S.candidates(p, st)
    win, cost, rungs, at_E, _ = race(p, cands, st, edge)
    s = st.smooth
    val = win.M[s][p.E]
    best = p.oracle[s][1]
    reg = math.inf if (win.diverged or not math.isfinite(val)) else (val / best if best > 0 else 1.0)
    steps = p.finder_steps + cost
    return S.Outcome(win.lr, reg, steps, steps + (0 if at_E else int(win.cost[p.E])), fb, len(cands), rungs)


BASE = S.Strategy("gmean", 0.25, 1.0, 0.25, False, 1, 3, 99, "ema", "coarse_half", tau=0.05)
SETS = {"seeds 10-11": [p for p in PS if p.seed in (10, 11)],
        "seed 12": [p for p in PS if p.seed == 12], "all": PS}
edges = [None] + [Edge(a, l, u, d) for a in (1, 2, 4) for l in (1.0, 2.0, 3.0)
                  for u, d in ((True, True), (True, False))]
for edge in edges:
    row = []
    for name, ps in SETS.items():
        outs = [simulate(p, BASE, edge) for p in ps]
        d = S.summary(ps, outs)
        row.append(f"{name} {d['hit']:.1%}" + (f" share {d.get('share_med', float('nan')):.1%}" if name == "all" else ""))
    print(f"{str(edge):55s}", " | ".join(row), flush=True)
