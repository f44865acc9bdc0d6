"""From a notebook, on any module: objects in, a metric in either direction, any loss, the
module's own logs, factories, the user's Trainer, Lightning's demo modules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lr_lab
from tests.conftest import only_run_dir
from tests.tb import scalars
from tests.test_run_folder import run_cli

ROOT = Path(__file__).resolve().parent.parent

NOTEBOOK = '''
import json, sys
import lightning as L, torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import lr_lab

class Net(L.LightningModule):
    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

class Data(L.LightningDataModule):
    """Tensors made in the notebook, held by the DataModule."""
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x[:240], self.y[:240]), batch_size=24, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[240:], self.y[240:]), batch_size=200)

gen = torch.Generator().manual_seed(5)
x = torch.randn(300, 4, generator=gen)
y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
net, data = Net(), Data(x, y)
before = {k: v.clone() for k, v in net.state_dict().items()}
results = lr_lab.run(
    model=net, datamodule=data, out=sys.argv[1], quiet=True,
    overrides={"metric": "val_acc", "metric_mode": "max", "trials.lrs": [0.001, 0.03, 1.0],
               "trials.max_epochs": 4, "finder.num_training": 30,
               "trials.executor": sys.argv[2]},
)
after = net.state_dict()
print(json.dumps({
    "untouched": all(torch.equal(before[k], after[k]) for k in before),
    "html": results._repr_html_(),
    "pictures": [str(p) for p in results.plot().paths],
    "run_dir": str(results.run_dir),
}))
'''


# Processes as well, in the slow suite (worker processes receive the objects by pickling).
@pytest.fixture(
    scope="module", params=["inline", pytest.param("processes", marks=pytest.mark.slow)]
)
def notebook_run(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebook")
    script = tmp / "notebook.py"
    script.write_text(NOTEBOOK)
    out = subprocess.run([sys.executable, str(script), str(tmp / "runs"), request.param],
                         capture_output=True, text=True, cwd=tmp, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    shown = json.loads(out.stdout.strip().splitlines()[-1])
    run_dir = Path(shown["run_dir"])
    return shown, run_dir, json.loads((run_dir / "results.json").read_text())


def test_objects_from_a_notebook_rank_by_accuracy_and_stay_untouched(notebook_run):
    shown, run_dir, res = notebook_run
    assert res["status"] == "complete" and res["metric_mode"] == "max"
    assert res["objects"] == {"model": "instance", "data": "instance"}
    assert res["config"]["model"]["class_path"] == "__main__.Net"
    assert res["config"]["model"]["init_args"] == {"lr": 0.1}  # what the instance says of itself
    fixed = [t for t in res["trials"] if t["role"] == "fixed"]
    best = max((t for t in fixed if t["final_loss"] is not None), key=lambda t: t["final_loss"])
    assert res["comparison"]["best_fixed"]["lr"] == best["lr"]  # the highest accuracy wins
    ranked = [r for r in res["comparison"]["rows"] if r["rank"] is not None]
    means = [r["mean"] for r in ranked]
    assert means == sorted(means, reverse=True)
    assert shown["untouched"]  # the user's own instance was deep-copied, never trained
    for trial in res["trials"]:  # the module's own tags, in every trial's run
        tags = scalars(run_dir / trial["tb_run"])
        assert {"val_acc", "val_loss", "train_loss", "loss/train"} <= set(tags), trial["name"]
        if not trial["diverged"]:
            assert len(trial["metrics"]["val_acc"]) == len(trial["val_loss"])
            assert trial["metrics"]["val_acc"] == trial["val_loss"]  # the metric ranked is val_acc
    assert "<table>" in shown["html"] and "higher is better" in shown["html"]
    assert "1 - val_acc" in shown["html"] and len(shown["pictures"]) == 3


def test_an_object_run_replays_by_hand(notebook_run, tmp_path):
    # The replay recipe of the README, on a trial of a run whose module came from a notebook.
    _, run_dir, res = notebook_run
    trial = next(t for t in res["trials"] if t["lr"] == 0.03)
    script = tmp_path / "replay.py"
    source = NOTEBOOK.split("gen = torch.Generator()")[0] + textwrap.dedent(f"""
        gen = torch.Generator().manual_seed(5)
        x = torch.randn(300, 4, generator=gen)
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
        torch.set_num_threads({res["threads"]})
        module = Net()
        state = torch.load({str(run_dir / "seed0/init.ckpt")!r}, weights_only=True)
        module.load_state_dict(state["state_dict"])
        module.lr = 0.03
        L.seed_everything(0)
        data = Data(x, y)
        L.seed_everything(0)
        L.Trainer(max_epochs=4, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False).fit(module, datamodule=data)
        print(json.dumps(float(module.trainer.callback_metrics["val_acc"])))
    """)
    script.write_text(source)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == pytest.approx(
        trial["final_loss"], rel=1e-5
    )


def test_a_gaussian_nll_runs_to_complete_and_the_lowest_ranks_first(tmp_path):
    args = ["--model", "tests.user_modules.GaussianNLL", "--data", "tests.user_modules.TinyData",
            "--metric", "val_nll", "--trials.lrs", "[0.001, 0.01, 0.05]", "--trials.max_epochs",
            "6", "--finder.num_training", "40", "--out", str(tmp_path)]  # fmt: skip
    code, printed, err = run_cli(args)
    assert code == 0, err
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert res["status"] == "complete"
    finals = {t["lr"]: t["final_loss"] for t in res["trials"] if t["role"] == "fixed"}
    assert min(finals.values()) < 0 and not any(t["diverged"] for t in res["trials"])
    assert res["comparison"]["best_fixed"]["loss"] == min(finals.values())
    assert "in its units" in printed
    # Lightning's finder stops at 4x its best loss, which for a negative best is at once: the
    # lab reads the threshold as a distance, so the curve goes on.
    assert len(res["finders"][0]["lr"]) > 30


def test_lightnings_demo_model_runs_and_its_table_reads_when_the_best_loss_is_zero(tmp_path):
    args = ["--model", "lightning.pytorch.demos.boring_classes.DemoModel",
            "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule",
            "--trials.lrs", "[0.0001, 0.01, 1.0]", "--trials.max_epochs", "3",
            "--finder.num_training", "30", "--out", str(tmp_path)]  # fmt: skip
    code, printed, err = run_cli(args)
    assert code == 0, err
    assert "Traceback" not in err
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert res["status"] == "complete" and res["comparison"]["metric"] == "train_loss"
    assert "no validation: the training loss" in printed
    if res["comparison"]["best_fixed"]["loss"] == 0:  # relu(...).sum() reaches an exact 0
        assert any(r["vs_best_fixed"].startswith("+") for r in res["comparison"]["rows"])


@pytest.mark.parametrize(
    "model", ["lightning.pytorch.demos.boring_classes.BoringModel",
              "lightning.pytorch.demos.transformer.LightningTransformer"],
)  # fmt: skip
def test_demo_modules_without_an_lr_attribute_are_one_line_before_any_download(model, tmp_path):
    args = ["--model", model, "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule",
            "--out", str(tmp_path)]  # fmt: skip
    code, printed, err = run_cli(args)
    assert code == 2 and "has no learning-rate attribute" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir()) and not (tmp_path / "data").exists()


def test_a_factory_names_the_model(tmp_path):
    args = ["--model.class_path", "tests.user_modules.make_net", "--model.init_args.hidden",
            "6", "--data", "tests.user_modules.TinyData", "--trials.lrs", "[0.05]",
            "--trials.max_epochs", "1", "--finder.enabled", "false", "--out", str(tmp_path)]  # fmt: skip
    code, _, err = run_cli(args)
    assert code == 0, err
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert res["config"]["model"] == {"class_path": "tests.user_modules.make_net",
                                      "init_args": {"hidden": 6}}  # fmt: skip


def test_a_user_model_without_a_datamodule_is_one_line(tmp_path):
    code, _, err = run_cli(["--model", "tests.user_modules.TinyNet", "--out", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "data.class_path: none given" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_the_users_trainer_settings_reach_every_trial_and_are_recorded(tmp_path):
    # Gradient clipping: the built-in model then trains through Lightning's own loop.
    args = ["--trials.lrs", "[0.05, 0.5]", "--trials.max_epochs", "2", "--data.n_samples", "160",
            "--finder.num_training", "30", "--trainer.gradient_clip_val", "0.5",
            "--out", str(tmp_path)]  # fmt: skip
    code, _, err = run_cli(args)
    assert code == 0, err
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert res["config"]["trainer"] == {"accelerator": "auto", "gradient_clip_val": 0.5}
    assert not any(t["batched"] for t in res["trials"])
    code, _, err = run_cli([*args[:-2], "--trainer.max_epochs", "3", "--out", str(tmp_path)])
    assert code == 2 and "trainer.max_epochs = 3: the lab sets it: set trials.max_epochs" in err


def test_an_instance_run_resumes_only_with_its_object(tmp_path):
    from tests.user_modules import TinyData, TinyNet

    results = lr_lab.run(
        model=TinyNet(), datamodule=TinyData(), out=tmp_path, quiet=True,
        overrides={"trials.lrs": [0.05], "trials.max_epochs": 1, "finder.enabled": False},
    )  # fmt: skip
    run_dir = results.run_dir
    state = json.loads((run_dir / "results.json").read_text())
    state["trials"], state["status"] = [], "interrupted"
    (run_dir / "results.json").write_text(json.dumps(state))
    with pytest.raises(lr_lab.UsageError, match="started with a model object"):
        lr_lab.resume(run_dir, datamodule=TinyData(), quiet=True)
    again = lr_lab.resume(run_dir, model=TinyNet(), datamodule=TinyData(), quiet=True)
    assert again.status == "complete" and len(again.trials) == 1


@pytest.mark.slow
def test_the_docs_notebook_runs_and_answers(tmp_path):
    # docs/notebook.ipynb, its code cells in order, as a kernel would run them.
    cells = json.loads((ROOT / "docs" / "notebook.ipynb").read_text())["cells"]
    code = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    script = tmp_path / "notebook.py"
    script.write_text(code + "\nprint(results._repr_html_())\nprint(results.plot().paths)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    res = json.loads((run_dir / "results.json").read_text())
    rec = res["comparison"]["recommendation"]
    assert res["status"] == "complete" and rec["source"] == "search"
    assert res["comparison"]["metric"] == "val_acc" and res["comparison"]["metric_mode"] == "max"
    assert "Recommendation: LR" in out.stdout and "loss_curves.png" in out.stdout
