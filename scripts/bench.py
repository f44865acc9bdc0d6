"""Benchmark: the same trials three ways, per trial-step.

    python scripts/bench.py                       # 32 LRs, default net, 4096 samples, 5 epochs
    python scripts/bench.py --lrs 8 --n_samples 1000000 --epochs 1

1. plain   - a plain PyTorch loop per LR (torch.optim, the lab's batches), checking the loss every
             step and logging the same scalars to TensorBoard with SummaryWriter;
   plain-noTB is the same loop without TensorBoard, for reference (what logging costs);
2. lab     - the lab's sequential Lightning trials (``run_trial``), one after another;
3. batched - the lab's batched trials (``run_batched``): all LRs in one vmapped module.

All three start from one init.ckpt and see the same batches in the same order. Prints per
trial-step microseconds, the ratio to plain, total wall time and the peak resident memory each
way added (Linux VmHWM, reset before each).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from lr_lab.batched import run_batched  # noqa: E402
from lr_lab.config import DataConfig, ExperimentConfig, ModelConfig, OptimizerConfig, TrialsConfig  # noqa: E402
from lr_lab.data import RegressionDataModule  # noqa: E402
from lr_lab.experiment import INIT_FILE, fixed_specs, prepare_initial_state, seed_dir  # noqa: E402
from lr_lab.model import SimpleRegressionNet  # noqa: E402
from lr_lab.runner import log_stride, run_trial  # noqa: E402
from lr_lab.trainer import quiet_lightning  # noqa: E402


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


def plain_trial(cfg: ExperimentConfig, init: Path, lr: float, log_dir: Path | None) -> int:
    """What a careful plain-PyTorch user writes: same net, data, order, checks and logging."""
    dm = RegressionDataModule(cfg.data, 0)
    net = SimpleRegressionNet(dm.input_dim, cfg.model.hidden_dims)
    state = torch.load(init, weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    o = cfg.optimizer
    if o.name == "sgd":
        opt = torch.optim.SGD(
            net.parameters(), lr=lr, momentum=o.momentum, weight_decay=o.weight_decay
        )
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=o.weight_decay)
    stride = log_stride(cfg, dm.steps_per_epoch)
    # log_dir None: the same loop without TensorBoard, to show what logging itself costs.
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
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["plain", "plain-noTB", "lab", "batched"]
    )
    args = parser.parse_args()

    quiet_lightning()
    lrs = [
        float(f"{v:.4g}")
        for v in torch.logspace(math.log10(args.lr_min), math.log10(args.lr_max), args.lrs)
    ]
    cfg = ExperimentConfig(
        data=DataConfig(n_samples=args.n_samples, batch_size=args.batch_size),
        model=ModelConfig(hidden_dims=[int(h) for h in args.hidden.split(",") if h]),
        optimizer=OptimizerConfig(name=args.optimizer),
        trials=TrialsConfig(lrs=lrs, max_epochs=args.epochs, batched=False),
    )
    data_mib = (args.n_samples * 2 * 4) / 2**20  # x and y, float32
    print(
        f"{args.lrs} LRs ({lrs[0]:g}..{lrs[-1]:g}), net 1-{args.hidden.replace(',', '-')}-1, "
        f"{args.n_samples} samples ({data_mib:.2f} MiB as tensors), batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.optimizer}, torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        prepare_initial_state(cfg, 0, seed_dir(base / "lab", 0), None, None)
        prepare_initial_state(cfg, 0, seed_dir(base / "batched", 0), None, None)
        init = seed_dir(base / "lab", 0) / INIT_FILE

        def measure(name: str, fn) -> None:  # noqa: ANN001
            if name in args.skip:
                return
            before = reset_peak_rss()
            start = time.perf_counter()
            steps = fn()
            wall = time.perf_counter() - start
            rows.append((name, steps, wall, 1e6 * wall / steps, peak_rss_mib() - before))

        measure("plain", lambda: sum(plain_trial(cfg, init, lr, base / "plain") for lr in lrs))
        measure("plain-noTB", lambda: sum(plain_trial(cfg, init, lr, None) for lr in lrs))
        measure("lab", lambda: sum(run_trial(s).steps for s in fixed_specs(cfg, 0, base / "lab")))
        measure(
            "batched",
            lambda: sum(r.steps for r in run_batched(fixed_specs(cfg, 0, base / "batched"))),
        )

    plain_us = next((r[3] for r in rows if r[0] == "plain"), None)
    print(
        f"\n{'way':<8} {'trial-steps':>11} {'wall s':>8} {'us/trial-step':>14} {'vs plain':>9} {'peak RSS +MiB':>14}"
    )
    for name, steps, wall, us, rss in rows:
        ratio = f"{us / plain_us:.2f}x" if plain_us else "-"
        print(f"{name:<8} {steps:>11} {wall:>8.2f} {us:>14.1f} {ratio:>9} {rss:>14.1f}")
    if plain_us:
        lab = next((r[3] for r in rows if r[0] == "lab"), None)
        batched = next((r[3] for r in rows if r[0] == "batched"), None)
        if lab:
            print(f"\nlab sequential per step: {lab / plain_us:.2f}x plain (target <= 1.3x)")
        if batched:
            print(
                f"batched speed-up per trial-step: {plain_us / batched:.1f}x faster than plain (target >= 4x)"
            )


if __name__ == "__main__":
    main()
