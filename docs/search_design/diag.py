import simulate as S, pathlib, sys, math
from collections import defaultdict
ps=S.load(sorted(pathlib.Path('/tmp/design/study').iterdir())[-1])
def diag(st, subset=None, show=True):
    sub=[p for p in ps if subset is None or p.seed in subset]
    d=S.evaluate(sub,st,ci=True); print(st.label()); print(" ",S.fmt(d)); print("  fam:", {f:f"{v[0]:.0%}/{v[1]}" for f,v in d["fam"].items()})
    kinds=defaultdict(int)
    for p in sub:
        o=S.simulate(p,st)
        if o.regret<=S.HIT: continue
        cands,fb=S.candidates(p,st)
        best_c=min(c.M[st.smooth][p.E] for c in cands)/p.oracle[st.smooth][1]
        kind="bracket" if best_c>S.HIT else "race"
        if fb: kind="fallback-"+kind
        kinds[kind]+=1
        if show:
            anc=S.anchor_of(p,st.anchor)
            print(f"   MISS {p.problem:30s} s{p.seed} {kind:16s} oracle {10**(p.oracle[st.smooth][0]/4):.3g} anchor {anc if anc is None else f'{anc:.3g}'} cands {[f'{c.lr:.2g}' for c in sorted(cands,key=lambda c:c.lr)]} -> {o.lr:.3g} regret {o.regret:.2f} best-cand {best_c:.2f}")
    print("  kinds:",dict(kinds))
if __name__=="__main__":
    for spec in sys.argv[1:]:
        diag(eval("S.Strategy("+spec+")"))
