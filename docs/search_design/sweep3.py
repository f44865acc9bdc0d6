"""Phase 2b: per-problem-seed regret and cost of every strategy of one smoothing (for cross-validation).

Writes out/sweep3_<smooth>.npz: labels, params (json), regret [n_strategies x n_PS], steps, grid13 steps,
and the PS index (problem, seed, family)."""
import json, sys, pathlib, multiprocessing as mp, time
import numpy as np
import simulate as S
from sweep import space

SM = sys.argv[1] if len(sys.argv) > 1 else "ema"
STUDY = sorted(pathlib.Path("/tmp/design/study").iterdir())[-1]
PS = S.load(STUDY)


def work(st):
    outs = [S.simulate(p, st) for p in PS]
    return [o.regret for o in outs], [o.steps for o in outs]


if __name__ == "__main__":
    sts = [st for st in space() if st.smooth == SM]
    t = time.time()
    with mp.get_context("fork").Pool(2) as pool:
        res = pool.map(work, sts, chunksize=100)
    np.savez_compressed(
        f"/tmp/design/out/sweep3_{SM}.npz",
        labels=np.array([st.label() for st in sts]),
        params=np.array([json.dumps({**st.__dict__, "coarse": list(st.coarse)}) for st in sts]),
        regret=np.array([r[0] for r in res]), steps=np.array([r[1] for r in res]),
        grid13=np.array([p.grid13_steps for p in PS]),
        problem=np.array([p.problem for p in PS]), seed=np.array([p.seed for p in PS]),
        family=np.array([p.family for p in PS]))
    print(len(sts), "strategies in", round(time.time() - t), "s")
