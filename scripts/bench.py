"""Benchmark: the same trials every way the lab can run them, against a plain PyTorch loop.

    python scripts/bench.py                           # 32 LRs, default net, 4096 samples, 5 epochs
    python scripts/bench.py --busy                    # the same with one core kept busy meanwhile
    python scripts/bench.py --lrs 8 --epochs 20 --ways plain lab processes   # the pool's speed-up
    python scripts/bench.py --lrs 8 --ways lab ray    # Ray's overhead per trial

Ways (all from one init.ckpt, the same batches in the same order):

- ``plain``: a plain PyTorch loop per LR (torch.optim, torch's default threads), checking the loss
  every step and logging the same scalars to TensorBoard; ``plain-noTB`` without TensorBoard.
- ``lab``: the lab's sequential Lightning trials in this process (``trials.executor: inline``).
- ``processes``: the same trials on ``--workers`` worker processes (pool start-up included).
- ``batched``: all LRs at once in one stacked, vmapped module.
- ``ray``: the trials on a pool of Ray actors on a local Ray (start-up included; needs ``.[ray]``).

Prints wall time, microseconds per trial-step, the ratio to ``plain`` and the peak memory each
way added, and checks that every lab way measured the same per-epoch losses bit for bit.
``--busy`` runs a process that spins one core for the whole benchmark: tiny tensors on many
intra-op threads collapse when a core is taken, which is what the lab's thread policy avoids.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from lr_lab.analysis.records import INIT_FILE, seed_dir  # noqa: E402
from lr_lab.config.parse import load  # noqa: E402
from lr_lab.experiment.initial_state import prepare_initial_state  # noqa: E402
from lr_lab.experiment.plan import fixed_trials  # noqa: E402
from lr_lab.experiment.trials import specs as plan_specs  # noqa: E402
from lr_lab.training.batched import run_batched  # noqa: E402
from lr_lab.training.data import RegressionDataModule  # noqa: E402
from lr_lab.training.model import SimpleRegressionNet  # noqa: E402
from lr_lab.training.problem import Experiment, fit_settings, problem_of  # noqa: E402
from lr_lab.training.runner import log_stride, run_trial  # noqa: E402
from lr_lab.training.trainer import quiet_lightning  # noqa: E402

WAYS = ("plain", "plain-noTB", "lab", "processes", "batched", "ray")


def peak_rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def reset_peak_rss() -> float:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return peak_rss_mib()


class _NoWriter:
    def add_scalar(self, *args: object) -> None:
        pass

    def close(self) -> None:
        pass


def plain_trial(exp: Experiment, init: Path, lr: float, log_dir: Path | None) -> int:
    """What a careful plain-PyTorch user writes: same net, data, order, checks and logging."""
    cfg, m = exp.cfg, exp.problem.builtin_model
    dm = RegressionDataModule(**cfg.data.init_args, seed=0)
    net = SimpleRegressionNet(dm.input_dim, m.hidden_dims)
    state = torch.load(init, weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    if m.optimizer == "sgd":
        opt = torch.optim.SGD(
            net.parameters(), lr=lr, momentum=m.momentum, weight_decay=m.weight_decay
        )
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=m.weight_decay)
    stride = log_stride(exp.fit, dm.steps_per_epoch)
    writer = SummaryWriter(str(log_dir / f"plain_lr={lr:.3g}")) if log_dir else _NoWriter()
    loader = dm.train_dataloader()
    step, first = 0, None
    for _ in range(cfg.trials.max_epochs):
        total, count = 0.0, 0
        for x, y in loader:
            loss = F.mse_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()  # the per-step divergence check needs the number
            first = value if first is None else first
            if not math.isfinite(value) or value > cfg.trials.divergence_factor * first:
                writer.close()
                return step + 1
            if step % stride == 0:
                writer.add_scalar("loss/train", value, step)
            total, count, step = total + value * len(x), count + len(x), step + 1
        writer.add_scalar("loss/train_epoch", total / count, step - 1)
        if dm.has_val:
            with torch.no_grad():
                writer.add_scalar("loss/val", F.mse_loss(net(dm.x_val), dm.y_val).item(), step - 1)
    writer.close()
    return step


def lab_way(exp: Experiment, base: Path, way: str, workers: int) -> list:
    """Run the fixed trials one lab way; return their results in spec order."""
    prepare_initial_state(exp.problem, 0, seed_dir(base, 0), None, None)
    specs = plan_specs(fixed_trials(exp.cfg, 0), exp.problem, exp.fit, base, threads=1)
    if way == "batched":
        return run_batched(specs)
    if way == "lab":
        return [run_trial(s) for s in specs]
    got: dict = {}
    if way == "processes":
        from lr_lab.executors.pool import run_processes

        run_processes(specs, workers, [], lambda r: got.update({r.name: r}))
    else:
        from lr_lab.config.schema import RayConfig
        from lr_lab.executors.ray import run_ray

        run_ray(specs, RayConfig(cpus_per_trial=1), lambda r: got.update({r.name: r}))
    return [got[s.name] for s in specs]


def spin() -> subprocess.Popen:
    """A process that keeps one core busy until it is killed (another user's job)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=int, default=32, help="number of learning rates (log grid)")
    parser.add_argument("--lr_min", type=float, default=1e-4)
    parser.add_argument("--lr_max", type=float, default=0.3)
    parser.add_argument("--n_samples", type=int, default=4096)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=str, default="32,32")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    parser.add_argument("--ways", nargs="*", default=["plain", "plain-noTB", "lab", "batched"],
                        choices=WAYS)  # fmt: skip
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()

    quiet_lightning()
    grid = torch.logspace(math.log10(args.lr_min), math.log10(args.lr_max), args.lrs)
    lrs = [float(f"{v:.4g}") for v in grid]
    request = load(None, {
        "data.n_samples": args.n_samples, "data.batch_size": args.batch_size,
        "model.hidden_dims": [int(h) for h in args.hidden.split(",") if h],
        "model.optimizer": args.optimizer,
        "trials.lrs": lrs, "trials.max_epochs": args.epochs, "trials.batched": False,
    })  # fmt: skip
    assert not request.problems, request.problems
    cfg = request.config
    exp = Experiment(cfg, problem_of(cfg), fit_settings(cfg))
    print(
        f"{args.lrs} LRs ({lrs[0]:g}..{lrs[-1]:g}), net 1-{args.hidden.replace(',', '-')}-1, "
        f"{args.n_samples} samples, batch {args.batch_size}, {args.epochs} epochs, "
        f"{args.optimizer}; torch {torch.__version__}; {len(os.sched_getaffinity(0))} cores"
        f"{', one kept busy' if args.busy else ''}; plain loop on torch's "
        f"{torch.get_num_threads()} threads"
    )
    rows, losses = [], {}
    busy = spin() if args.busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            prepare_initial_state(exp.problem, 0, seed_dir(base / "ref", 0), None, None)
            init = seed_dir(base / "ref", 0) / INIT_FILE
            for way in args.ways:
                threads = torch.get_num_threads()
                before = reset_peak_rss()
                start = time.perf_counter()
                if way.startswith("plain"):
                    log = base / "plain" if way == "plain" else None
                    steps = sum(plain_trial(exp, init, lr, log) for lr in lrs)
                else:
                    results = lab_way(exp, base / way, way, args.workers)
                    steps = sum(r.steps for r in results)
                    losses[way] = [r.train_loss for r in results]
                wall = time.perf_counter() - start
                rows.append((way, steps, wall, 1e6 * wall / steps, peak_rss_mib() - before))
                torch.set_num_threads(threads)  # the lab sets its own; the plain loop keeps torch's
    finally:
        if busy:
            busy.kill()
    report(rows, losses)


def report(rows: list, losses: dict) -> None:
    plain_us = next((r[3] for r in rows if r[0] == "plain"), None)
    print(f"\n{'way':<11}{'trial-steps':>12}{'wall s':>9}{'us/trial-step':>15}{'vs plain':>10}"
          f"{'peak RSS +MiB':>15}")  # fmt: skip
    for name, steps, wall, us, rss in rows:
        ratio = f"{us / plain_us:.2f}x" if plain_us else "-"
        print(f"{name:<11}{steps:>12}{wall:>9.2f}{us:>15.1f}{ratio:>10}{rss:>15.1f}")
    walls = {r[0]: r[2] for r in rows}
    if "lab" in walls and "processes" in walls:
        print(f"\nprocesses: {walls['processes'] / walls['lab']:.2f}x the wall time of inline "
              "(target <= 0.6x on 2 cores)")  # fmt: skip
    if "ray" in walls and "lab" in walls:
        per_trial = (walls["ray"] - walls["lab"]) / max(1, len(losses.get("ray", [])))
        print(f"ray: {walls['ray']:.1f} s, {per_trial:+.2f} s per trial against inline")
    if plain_us and "batched" in walls:
        batched = next(r[3] for r in rows if r[0] == "batched")
        print(f"batched: {batched / plain_us:.2f}x a plain loop per trial-step")
    sequential = {k: v for k, v in losses.items() if k != "batched"}
    if len(sequential) > 1:
        same = len({repr(v) for v in sequential.values()}) == 1
        print(f"per-epoch losses of {', '.join(sequential)}: {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
