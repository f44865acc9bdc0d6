"""Phase 2: the strategy sweep, on 2 processes; writes out/sweep2_{train,hold,all}.json."""
import json, sys, pathlib, multiprocessing as mp, time
import simulate as S

STUDY = sorted(pathlib.Path("/tmp/design/study").iterdir())[-1]
PS = S.load(STUDY)
SETS = {"train": [p for p in PS if p.seed in (10, 11)], "hold": [p for p in PS if p.seed == 12], "all": PS}


def space():
    brackets = [(a, b, 0.25) for a in (0, 0.25, 0.5, 0.75, 1.0) for b in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]
    brackets += [(a, b, 0.5) for a in (0, 0.5, 1.0) for b in (0.5, 1.0, 1.5, 2.0)]
    races = [(b0, 0, 1) for b0 in (1, 2, 3)]
    races += [(b0, eta, rmax) for b0 in (1, 2, 3) for eta in (2, 3) for rmax in (2, 3, 99)]
    out = []
    for sm in ("ema", "mean3", "min"):
        for anchor in ("gmed", "valley", "min", "gmean", "pair", "md10c"):
            for a, b, step in brackets:
                for b0, eta, rmax in races:
                    for tau in (0.0, 0.02, 0.05):
                        out.append(S.Strategy(anchor, a, b, step, False, b0, eta, rmax, sm,
                                              "coarse_half", tau=tau))
    return out


def work(st):
    res = {"strategy": st.label(), "params": st.__dict__}
    for name, sub in SETS.items():
        d = S.evaluate(sub, st)
        res[name] = d
    return res


if __name__ == "__main__":
    sts = space()
    t = time.time()
    with mp.get_context("fork").Pool(2) as pool:
        rows = pool.map(work, sts, chunksize=200)
    for r in rows:
        r["params"]["coarse"] = list(r["params"]["coarse"])
    json.dump(rows, open("/tmp/design/out/sweep2.json", "w"))
    print(len(rows), "strategies in", round(time.time() - t), "s")
