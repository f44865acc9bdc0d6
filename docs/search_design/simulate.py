"""Design study of lr_lab's verified LR ("the search"): simulate it exactly from full-budget trials.

    python /tmp/design/simulate.py [STUDY_DIR]          # writes /tmp/design/out/*

A rung of the race trains a candidate from the same init with the full-budget schedule and stops
after b epochs, so its per-epoch metrics are the first b epochs of the full trial at that LR; its
cost is b * steps_per_epoch (or the steps until it diverged, when that came first). Every rung of
every strategy is therefore read off the run folders, with no approximation.

Definitions (all per problem-seed, "PS"):
- dense grid: 25 quarter-decade LRs 1e-5..10 (index k = 4*log10(lr), -20..4), E = 10 epochs each.
- smoothing s of a trial's val_loss over its first b epochs: last, mean2, mean3, min, ema.
- oracle: best of the 13 half-decade LRs 1e-5..1 (k even, <= 0) by s at E. Regret = s_E(choice)
  / s_E(oracle); diverged (or a non-finite metric within E) = inf. Hit: regret <= 1.5.
- search_steps = finder steps + every rung's steps (a promoted candidate is retrained from init);
  the winner's final E-epoch training is NOT in it (it is the deliverable), except that a rung run
  at b = E already is that training. share = search_steps / (13 * E * steps_per_epoch).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HIT = 1.5
SMOOTHINGS = ("last", "mean2", "mean3", "min", "ema")
TRUSTED = ("valley", "minimum_div10", "valley@corrected", "minimum_div10@corrected")
ALL_RULES = ("valley", "minimum_div10", "valley@corrected", "minimum_div10@corrected",
             "steep_log", "steep_log@corrected", "lightning", "lightning@corrected")
KMIN, KMAX = -20, 4  # dense grid: 1e-5 .. 10
ORACLE_K = list(range(-20, 1, 2))  # 13 half decades 1e-5 .. 1
OUT = Path("/tmp/design/out")


def family(name: str) -> str:
    if name.startswith(("linear", "sine", "quadratic")):
        opt = name.split("-")[2]
        return f"builtin-{opt}"
    if name.startswith("tab-"):
        return "tabular-logreg" if "logreg" in name else "tabular-mlp"
    if name.startswith(("cnn", "digits")):
        return "vision"
    if name.startswith("rnn"):
        return "sequence"
    if name.startswith("tfm"):
        return "transformer"
    return "other"


# ------------------------------------------------------------------------------------ loading
@dataclass
class Trial:
    lr: float
    vals: np.ndarray  # E entries, inf where the trial had diverged / metric non-finite
    steps: int
    diverged: bool
    cost: np.ndarray  # cost[b] steps to train b epochs (b = 0..E)
    M: dict = field(default_factory=dict)  # smoothing -> array over b = 0..E (index 0 unused)
    name: str = ""


@dataclass
class PS:
    problem: str
    family: str
    seed: int
    E: int
    spe: int
    finder_steps: int
    rules: dict
    finder_lr: list
    finder_corr: list
    grid: dict  # k -> Trial
    checks: list  # Trial (finder_check), .name holds the rule list
    run_dir: str
    oracle: dict = field(default_factory=dict)  # smoothing -> (k, value)

    @property
    def grid13_steps(self) -> int:
        return 13 * self.E * self.spe


def smooth(v: np.ndarray, b: int, how: str) -> float:
    w = v[:b]
    if not np.all(np.isfinite(w)):
        return math.inf
    if how == "last":
        return float(w[-1])
    if how == "mean2":
        return float(w[-2:].mean())
    if how == "mean3":
        return float(w[-3:].mean())
    if how == "min":
        return float(w.min())
    if how == "ema":  # EMA with weight 0.5 on the newest epoch (half-life one epoch)
        e = w[0]
        for x in w[1:]:
            e = 0.5 * e + 0.5 * x
        return float(e)
    raise ValueError(how)


def make_trial(t: dict, E: int, spe: int) -> Trial:
    v = np.full(E, math.inf)
    vl = [x if (x is not None and math.isfinite(x)) else math.inf for x in t["val_loss"]]
    v[: len(vl)] = vl[:E]
    if t["diverged"]:
        # the epochs after divergence never ran; an epoch whose steps reached the divergence is inf
        n_ok = len(vl)
        if t.get("diverged_step") is not None:
            n_ok = min(n_ok, int(t["diverged_step"]) // spe)
        v[n_ok:] = math.inf
    cost = np.array([b * spe for b in range(E + 1)])
    if t["diverged"]:
        cost = np.minimum(cost, t["steps"])
    tr = Trial(t["lr"], v, t["steps"], t["diverged"], cost, name=t["name"])
    for s in SMOOTHINGS:
        tr.M[s] = np.array([math.inf] + [smooth(v, b, s) for b in range(1, E + 1)])
    return tr


def load(study: Path) -> list[PS]:
    out = []
    for run in sorted((study / "runs").iterdir()):
        r = json.loads((run / "results.json").read_text())
        if r["status"] != "complete":
            print("skip (not complete):", run.name, r["status"])
            continue
        E = r["config"]["trials"]["max_epochs"]
        for f in r["finders"]:
            seed = f["seed"]
            trials = [t for t in r["trials"] if t["seed"] == seed]
            spe = max(t["steps"] for t in trials) // E
            assert all(t["steps"] == spe * E for t in trials if not t["diverged"]), run.name
            grid = {}
            for t in trials:
                if t["role"] == "fixed":
                    k = round(4 * math.log10(t["lr"]))
                    assert abs(4 * math.log10(t["lr"]) - k) < 0.01
                    grid[k] = make_trial(t, E, spe)
            checks = [make_trial(t, E, spe) for t in trials if t["role"] == "finder_check"]
            for c, t in zip(checks, [t for t in trials if t["role"] == "finder_check"]):
                c.name = "+".join(t["rules"])
            out.append(PS(run.name, family(run.name), seed, E, spe, len(f["lr"]), f["rules"],
                          f["lr"], f.get("corrected_loss") or f["loss"], grid, checks,
                          str(run)))
    for p in out:
        for s in SMOOTHINGS:
            vals = [(p.grid[k].M[s][p.E], k) for k in ORACLE_K]
            best = min(vals)
            p.oracle[s] = (best[1], best[0])
    return out


# ------------------------------------------------------------------------------------ strategy
def qk(lr: float) -> int:
    return round(4 * math.log10(lr))


def anchor_of(p: PS, how: str) -> float | None:
    if how == "valley":
        sug = [p.rules.get("valley")]
    elif how == "md10c":
        sug = [p.rules.get("minimum_div10@corrected")]
    elif how == "pair":  # the two rules the README trusts most
        sug = [p.rules.get("valley"), p.rules.get("minimum_div10@corrected")]
    else:
        sug = [p.rules.get(r) for r in TRUSTED]
    logs = sorted(math.log10(x) for x in sug if x)
    if not logs:
        return None
    if how in ("gmed", "pair", "valley", "md10c"):
        n = len(logs)
        m = logs[n // 2] if n % 2 else 0.5 * (logs[n // 2 - 1] + logs[n // 2])
    elif how == "min":
        m = logs[0]
    elif how == "max":
        m = logs[-1]
    elif how == "gmean":
        m = sum(logs) / len(logs)
    else:
        raise ValueError(how)
    return 10**m


@dataclass(frozen=True)
class Strategy:
    anchor: str = "gmed"  # gmed | valley | min | max | gmean | pair | md10c | none (finder-free)
    a: float = 0.5  # decades below the anchor
    b: float = 1.0  # decades above
    step: float = 0.25  # candidate spacing in decades
    rules_too: bool = False  # add the trusted rules' own suggestions as candidates
    b0: int = 1
    eta: int = 3  # 0 = a single rung: all-but-one dropped after b0
    rmax: int = 99
    smooth: str = "mean3"
    fallback: str = "coarse"  # coarse (1e-4..1 per decade) | coarse_half | argmin
    tau: float = 0.0  # > 0: a rung whose best finite score is not tau better than the survivors'
    #                  median (nothing has learned yet) is extended (budget doubled, no cut); 0 = never.
    #                  Only the first rung is extended (before any cut).
    ext_max: int = 99  # the first rung is extended only up to this many epochs
    shade: float = 0.0  # answer = the race winner's LR / 10**shade (a dense-grid LR): short rungs
    #                     favour too-large LRs
    delta: float = 0.0  # at the final cut, the smallest LR whose score is within 1+delta of the best
    coarse: tuple = ()  # finder-free: these grid ks raced (anchor == "none")

    def label(self) -> str:
        if self.anchor == "none":
            base = f"nofinder[{len(self.coarse)}]"
        else:
            base = f"{self.anchor} -{self.a}/+{self.b}@{self.step}{'+rules' if self.rules_too else ''}"
        eta = "1rung" if self.eta == 0 else f"eta{self.eta}" + ("" if self.rmax >= 99 else f"r{self.rmax}")
        ext = (f" ext{self.tau:g}" if self.tau else "") + (f" cons{self.delta:g}" if self.delta else "")
        ext += f" shade{self.shade:g}" if self.shade else ""
        ext += f" extmax{self.ext_max}" if self.ext_max < 99 else ""
        return f"{base} b0={self.b0} {eta}{ext} {self.smooth} fb={self.fallback}"


def candidates(p: PS, st: Strategy) -> tuple[list[Trial], bool]:
    """The candidates' trials, and whether the fallback was used."""
    if st.anchor == "none":
        return [p.grid[k] for k in st.coarse], False
    anc = anchor_of(p, st.anchor)
    fb = anc is None
    if fb:
        if st.fallback == "coarse":
            return [p.grid[k] for k in (-16, -12, -8, -4, 0)], True
        if st.fallback == "coarse_half":
            return [p.grid[k] for k in range(-16, 1, 2)], True
        if st.fallback == "argmin":
            i = int(np.nanargmin(np.array(p.finder_corr, dtype=float)))
            anc = p.finder_lr[i]
        else:
            raise ValueError(st.fallback)
    ka = min(max(qk(anc), KMIN), KMAX)  # an anchor outside the dense grid is moved to its edge
    s4 = round(4 * st.step)
    ks = range(ka - round(4 * st.a), ka + round(4 * st.b) + 1, s4)
    cands = [p.grid[k] for k in ks if KMIN <= k <= KMAX]
    if st.rules_too and not fb:
        for c in p.checks:
            if any(r in TRUSTED for r in c.name.split("+")) and all(
                abs(math.log10(c.lr) - math.log10(x.lr)) > 0.01 for x in cands
            ):
                cands.append(c)
    return cands, fb


@dataclass
class Outcome:
    lr: float
    regret: float
    steps: int  # search steps (finder + race)
    total: int  # + the winner's final training when not already done at E
    fallback: bool
    n_cand: int
    rungs: int
    steps_resume: int = 0  # search steps had promoted candidates resumed from their rung checkpoint


def race(p: PS, cands: list[Trial], st: Strategy) -> tuple[Trial, int, int, bool, int]:
    """Successive halving from one init; returns the winner, the race's steps (each rung trained from
    init), the number of cuts, whether the winner's last rung was the full budget, and the steps
    had every promoted candidate resumed from its rung's checkpoint instead (a rung is a prefix)."""
    s, E = st.smooth, p.E
    surv = sorted(cands, key=lambda t: t.lr)
    b, r, cost, at_E = st.b0, 0, 0, False
    reached: dict[int, int] = {}
    while len(surv) > 1:
        b = min(b, E)
        cost += sum(int(t.cost[b]) for t in surv)
        for t in surv:
            reached[id(t)] = int(t.cost[b])
        at_E = b == E
        if st.tau and b < min(E, st.ext_max) and r == 0:  # only before the first cut: "nothing learned yet"
            fin = [t.M[s][b] for t in surv if math.isfinite(t.M[s][b])]
            if len(fin) > 1 and float(np.median(fin)) <= (1 + st.tau) * min(fin):  # undecided
                surv = [t for t in surv if math.isfinite(t.M[s][b])]
                b *= 2
                continue
        r += 1
        last = st.eta == 0 or r >= st.rmax or b >= E
        keep = 1 if last else max(1, len(surv) // st.eta)
        ranked = sorted(surv, key=lambda t: (t.M[s][b], t.lr))  # ties: the smaller LR
        if keep == 1 and st.delta and math.isfinite(ranked[0].M[s][b]):
            lim = (1 + st.delta) * ranked[0].M[s][b]
            ranked = sorted([t for t in ranked if t.M[s][b] <= lim], key=lambda t: t.lr)
        surv = ranked[:keep]
        b = b * (st.eta if st.eta else 1)
    return surv[0], cost, r, at_E, sum(reached.values())


def simulate(p: PS, st: Strategy) -> Outcome:
    cands, fb = candidates(p, st)
    win, cost, rungs, at_E, cost_resume = race(p, cands, st)
    if st.shade:
        k = max(KMIN, qk(win.lr) - round(4 * st.shade))
        if k != qk(win.lr) or abs(4 * math.log10(win.lr) - qk(win.lr)) > 0.01:
            win, at_E = p.grid[k], False
    s = st.smooth
    val = win.M[s][p.E]
    best = p.oracle[s][1]
    reg = math.inf if (win.diverged or not math.isfinite(val)) else (val / best if best > 0 else 1.0)
    finder = 0 if st.anchor == "none" else p.finder_steps
    steps = finder + cost
    total = steps + (0 if at_E else int(win.cost[p.E]))
    return Outcome(win.lr, reg, steps, total, fb, len(cands), rungs, finder + cost_resume)


# ------------------------------------------------------------------------------------ statistics
def quantile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))] if v else math.nan


RNG = np.random.default_rng(0)


def boot_ci(hits: np.ndarray, n_boot=4000, groups=None):
    """95% percentile bootstrap of the mean of ``hits`` (resampling PS, or whole groups)."""
    if len(hits) == 0:
        return (math.nan, math.nan)
    if groups is None:
        idx = RNG.integers(0, len(hits), size=(n_boot, len(hits)))
        m = hits[idx].mean(axis=1)
    else:
        gs = sorted(set(groups))
        by = [hits[[i for i, g in enumerate(groups) if g == x]] for x in gs]
        m = []
        for _ in range(n_boot):
            pick = RNG.integers(0, len(gs), size=len(gs))
            m.append(np.concatenate([by[i] for i in pick]).mean())
        m = np.array(m)
    return (float(np.quantile(m, 0.025)), float(np.quantile(m, 0.975)))


def summary(ps: list[PS], outs: list[Outcome], ci=False) -> dict:
    reg = np.array([o.regret for o in outs])
    hits = (reg <= HIT).astype(float)
    share = np.array([o.steps / p.grid13_steps for p, o in zip(ps, outs)])
    tshare = np.array([o.total / p.grid13_steps for p, o in zip(ps, outs)])
    rshare = np.array([o.steps_resume / p.grid13_steps for p, o in zip(ps, outs)])
    fam = defaultdict(list)
    for p, h in zip(ps, hits):
        fam[p.family].append(h)
    d = {
        "n": len(outs),
        "hit": float(hits.mean()),
        "fam": {f: (float(np.mean(v)), len(v)) for f, v in sorted(fam.items())},
        "fam_min": min(float(np.mean(v)) for v in fam.values()),
        "p50": float(np.median(reg)),
        "p90": quantile(list(reg), 0.9),
        "div": float(np.mean(np.isinf(reg))),
        "share_med": float(np.median(share)),
        "share_max": float(share.max()),
        "share_p90": quantile(list(share), 0.9),
        "total_share_med": float(np.median(tshare)),
        "resume_share_med": float(np.median(rshare)),
        "fallback": float(np.mean([o.fallback for o in outs])),
        "n_cand_med": float(np.median([o.n_cand for o in outs])),
    }
    if ci:
        d["ci"] = boot_ci(hits)
        d["ci_cluster"] = boot_ci(hits, groups=[p.problem for p in ps])
    return d


def meets(d: dict) -> bool:
    return (d["hit"] >= 0.9 and d["fam_min"] >= 0.8 and d["p90"] <= HIT and d["div"] == 0
            and d["share_med"] <= 0.10)


def fmt(d: dict) -> str:
    ci = f" [{d['ci'][0]:.0%},{d['ci'][1]:.0%}]" if "ci" in d else ""
    return (f"hit {d['hit']:.0%}{ci} n={d['n']} fam_min {d['fam_min']:.0%} p50 {d['p50']:.3f} "
            f"p90 {d['p90']:.3f} div {d['div']:.0%} share med {d['share_med']:.1%} "
            f"p90 {d['share_p90']:.1%} max {d['share_max']:.1%} (with final: {d['total_share_med']:.1%})"
            f" cand {d['n_cand_med']:.0f}")


def evaluate(ps, st, ci=False):
    return summary(ps, [simulate(p, st) for p in ps], ci)


# ------------------------------------------------------------------------------------ analyses
def stability(ps: list[PS], say) -> None:
    say("## Smoothing: how stable is the metric, and the oracle?\n")
    sw = defaultdict(list)
    for p in ps:
        k = p.oracle["last"][0]
        v = p.grid[k].vals
        sw[p.family].append(abs(v[-1] - v[-2]) / v[-2])
        sw["ALL"].append(abs(v[-1] - v[-2]) / v[-2])
        for tag in ("b16", "b64"):
            if f"-{tag}-" in p.problem:
                sw[f"builtin {tag}"].append(abs(v[-1] - v[-2]) / v[-2])
    say("Epoch-to-epoch swing of the last-epoch val_loss at the (last-epoch) oracle LR, |v10-v9|/v9:")
    for f, v in sorted(sw.items()):
        say(f"  {f:16s} median {np.median(v):6.1%}  p90 {quantile(v, .9):6.1%}  max {max(v):6.1%}  (n={len(v)})")
    # swing across the whole 13-grid near the optimum: LRs within 1.5x of the oracle (last)
    say("\nOracle stability per smoothing (over all PS):")
    say("  flip9 = oracle LR at epoch 9 differs from epoch 10; reg9 = how often the epoch-9 oracle is >1.5x at 10;")
    say("  seed_sd = SD over seeds of the oracle's log10 LR (decades), median over problems; "
        "near = median number of 13-grid LRs within 1.5x of the oracle")
    for s in SMOOTHINGS:
        flip, reg9, near = [], [], []
        for p in ps:
            k10 = p.oracle[s][0]
            k9 = min((p.grid[k].M[s][p.E - 1], k) for k in ORACLE_K)[1]
            flip.append(k9 != k10)
            reg9.append(not p.grid[k9].M[s][p.E] <= HIT * p.oracle[s][1])
            near.append(sum(p.grid[k].M[s][p.E] <= HIT * p.oracle[s][1] for k in ORACLE_K))
        by = defaultdict(list)
        for p in ps:
            by[p.problem].append(p.oracle[s][0] / 4)
        sd = [np.std(v) for v in by.values()]
        say(f"  {s:6s} flip9 {np.mean(flip):5.0%}  reg9 {np.mean(reg9):5.0%}  seed_sd {np.median(sd):.2f} "
            f"(mean {np.mean(sd):.2f})  near {np.median(near):.0f}")
    say("")


def single_rules(ps: list[PS], s: str, say) -> dict:
    say(f"## Single rules (smoothing {s}; 'grid' = metric read at the nearest dense-grid LR, "
        "'exact' = the finder_check trial at the rule's own LR)\n")
    res = {}
    for rule in ALL_RULES:
        for how in ("grid", "exact"):
            regs = []
            for p in ps:
                lr = p.rules.get(rule)
                if not lr:
                    regs.append(math.inf if False else None)
                    continue
                if how == "grid":
                    t = p.grid[min(max(qk(lr), KMIN), KMAX)]
                else:
                    t = next(c for c in p.checks if abs(math.log10(c.lr) - math.log10(lr)) < 1e-6)
                val = t.M[s][p.E]
                regs.append(math.inf if t.diverged or not math.isfinite(val) else val / p.oracle[s][1])
            ok = [r for r in regs if r is not None]
            hits = np.array([r is not None and r <= HIT for r in regs], float)
            fam = defaultdict(list)
            for p, h in zip(ps, hits):
                fam[p.family].append(h)
            res[(rule, how)] = hits.mean()
            say(f"  {rule:24s} {how:5s} hit {hits.mean():4.0%} [{boot_ci(hits)[0]:.0%},{boot_ci(hits)[1]:.0%}] "
                f"p50 {np.median(ok):7.3f} p90 {quantile(ok, .9):8.3g} none {1 - len(ok) / len(regs):4.0%} "
                f"fam_min {min(np.mean(v) for v in fam.values()):4.0%}")
    say("")
    return res


def grid_space(smooth: str) -> list[Strategy]:
    out = []
    brackets = [(a, b, 0.25) for a in (0, 0.25, 0.5, 0.75, 1.0) for b in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]
    brackets += [(a, b, 0.5) for a in (0, 0.5, 1.0) for b in (0.5, 1.0, 1.5, 2.0)]
    races = [(b0, 0, 1) for b0 in (1, 2, 3)]
    races += [(b0, eta, rmax) for b0 in (1, 2, 3) for eta in (2, 3) for rmax in (2, 3, 99)]
    for anchor in ("gmed", "valley", "min", "max", "gmean", "pair", "md10c"):
        for (a, b, step) in brackets:
            for rules_too in (False, True):
                for (b0, eta, rmax) in races:
                    out.append(Strategy(anchor, a, b, step, rules_too, b0, eta, rmax, smooth))
    return out


def neighbours(st: Strategy) -> list[Strategy]:
    """One knob moved one notch (the robustness check: no knife edge)."""
    from dataclasses import replace
    out = []
    for a in (st.a - st.step, st.a + st.step):
        if a >= 0:
            out.append(replace(st, a=a))
    for b in (st.b - st.step, st.b + st.step):
        if b >= st.step:
            out.append(replace(st, b=b))
    for b0 in (st.b0 - 1, st.b0 + 1):
        if 1 <= b0 <= 3:
            out.append(replace(st, b0=b0))
    out.append(replace(st, rules_too=not st.rules_too))
    for anchor in ("gmed", "valley", "pair", "gmean"):
        if anchor != st.anchor:
            out.append(replace(st, anchor=anchor))
    for s in SMOOTHINGS:
        if s != st.smooth:
            out.append(replace(st, smooth=s))
    return out


def main() -> None:
    study = Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(Path("/tmp/design/study").iterdir())[-1]
    OUT.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(x=""):
        print(x, flush=True)
        lines.append(x)

    ps = load(study)
    train = [p for p in ps if p.seed in (10, 11)]
    hold = [p for p in ps if p.seed == 12]
    say(f"# Search design study: {len(ps)} problem-seeds ({len({p.problem for p in ps})} problems) "
        f"from {study}\n")
    fams = defaultdict(set)
    for p in ps:
        fams[p.family].add(p.problem)
    for f, v in sorted(fams.items()):
        say(f"  {f:16s} {len(v)} problems: {', '.join(sorted(v))}")
    say("\nsteps per epoch / finder steps / 13-grid steps per problem (seed 10):")
    for p in ps:
        if p.seed == 10:
            say(f"  {p.problem:30s} spe {p.spe:4d}  finder {p.finder_steps:3d}  grid13 {p.grid13_steps:6d}"
                f"  finder share {p.finder_steps / p.grid13_steps:5.1%}")
    say("")
    stability(ps, say)
    for s in SMOOTHINGS:
        say(f"### rules under smoothing {s}")
        single_rules(ps, s, say)

    # ---- the sweep, on the training seeds
    rows = []
    for s in SMOOTHINGS:
        for st in grid_space(s):
            d = evaluate(train, st)
            rows.append((st, d))
    json.dump([{"strategy": st.label(), **{k: v for k, v in d.items() if k != "fam"},
                "fam": d["fam"]} for st, d in rows], open(OUT / "sweep_train.json", "w"))
    say(f"## Sweep on seeds 10-11 ({len(train)} PS): {len(rows)} strategies\n")
    for s in SMOOTHINGS:
        ok = [(st, d) for st, d in rows if st.smooth == s and meets(d)]
        say(f"  smoothing {s:6s}: {len(ok):5d} strategies meet every target")
    okall = sorted([(st, d) for st, d in rows if meets(d)], key=lambda x: (x[1]["share_med"], -x[1]["hit"]))
    say("\nCheapest 25 that meet every target (train seeds):")
    for st, d in okall[:25]:
        say(f"  {st.label():60s} {fmt(d)}")
    say("\nBest hit rate at median share <= 10% (any p90), top 15:")
    cheap = sorted([(st, d) for st, d in rows if d["share_med"] <= 0.10],
                   key=lambda x: (-x[1]["hit"], -x[1]["fam_min"], x[1]["share_med"]))
    for st, d in cheap[:15]:
        say(f"  {st.label():60s} {fmt(d)}")
    return rows, ps, train, hold, say, lines


if __name__ == "__main__":
    main()
