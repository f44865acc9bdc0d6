"""pytorch-forecasting in the lab: N-BEATS made by a factory (``NBeats.from_dataset``).

(a) The bundled ``forecasting`` config runs end to end through the command line.
(b) The lab's ``lightning`` rule is what a direct ``Tuner(trainer).lr_find`` returns on the same
    model (loaded from the run's ``init.ckpt``), data and settings, seeded as the lab seeds.
    Such a model's hyperparameters hold objects (its loss, its data set's parameters), so the
    finder's own restore of its temporary checkpoint fails with torch's weights-only loading: a
    direct call without a whole-loading ``TorchCheckpointIO`` plugin raises after its search, and
    succeeds with the lab's (``_OwnCheckpoint``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("pytorch_forecasting")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.tuner import Tuner  # noqa: E402

from lr_lab.examples.forecasting import ForecastingData, nbeats  # noqa: E402
from lr_lab.finder.lr_find import _OwnCheckpoint  # noqa: E402
from tests.conftest import only_run_dir  # noqa: E402
from tests.test_run_folder import run_cli  # noqa: E402

# Small overrides: LRs that train (none diverges), 2 epochs, a 40-step finder.
SMALL = ["--trials.lrs", "[0.001, 0.01]", "--trials.max_epochs", "2",
         "--finder.num_training", "40", "--trials.executor", "inline"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("forecasting")
    code, _, err = run_cli(["--config", "forecasting", "--out", str(out), *SMALL])
    assert code == 0, err
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_the_bundled_config_runs_end_to_end(run):
    run_dir, res = run
    assert res["status"] == "complete" and res["pending"] == []
    assert res["config"]["model"]["class_path"] == "lr_lab.examples.forecasting.nbeats"
    rows = {name: row for row in res["comparison"]["rows"] for name in row["trial_names"]}
    # The grid and the finder's checks (a run may add trials of other roles, e.g. a search's).
    trials = [t for t in res["trials"] if t["role"] in ("fixed", "finder_check")]
    assert {t["role"] for t in trials} == {"fixed", "finder_check"}
    for trial in trials:
        assert not trial["diverged"], trial["name"]
        assert rows[f"seed0/{trial['name']}"]["rank"] is not None, trial["name"]
        assert len(trial["val_loss"]) == 2 and all(v > 0 for v in trial["val_loss"])
    assert len({t["first_batch_sha256"] for t in trials}) == 1  # one data order
    (finder,) = res["finders"]
    assert 11 < len(finder["lr"]) == len(finder["loss"]) == len(finder["raw_loss"]) <= 40
    assert all(math.isfinite(v) for v in finder["raw_loss"])
    assert finder["suggestion"] == finder["rules"]["lightning"] is not None
    assert (run_dir / "lr_finder.png").is_file()


def direct_lr_find(run_dir: Path, res: dict, tmp_path: Path, plugins: list):
    """``Tuner.lr_find`` by hand, as ``lr_lab.finder.lr_find.run_finder`` runs it."""
    f, seed = res["config"]["finder"], res["seeds"][0]
    module = nbeats(**res["config"]["model"]["init_args"], learning_rate=f["min_lr"])
    init = torch.load(run_dir / f"seed{seed}" / "init.ckpt", weights_only=True)
    module.load_state_dict(init["state_dict"])
    L.seed_everything(seed, verbose=False)
    datamodule = ForecastingData(**res["config"]["data"]["init_args"])
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
                        devices=1, max_epochs=-1, default_root_dir=tmp_path,
                        plugins=plugins)  # fmt: skip
    L.seed_everything(seed, verbose=False)
    return Tuner(trainer).lr_find(
        module,
        datamodule=datamodule,
        min_lr=f["min_lr"],
        max_lr=f["max_lr"],
        num_training=f["num_training"],
        mode=f["mode"],
        early_stop_threshold=f["early_stop_threshold"],
        update_attr=False,
    )


def test_the_lightning_rule_is_a_direct_lr_find(run, tmp_path):
    run_dir, res = run
    threads = torch.get_num_threads()
    torch.set_num_threads(res["threads"])  # the run's intra-op threads: the same float sums
    try:
        with pytest.raises(Exception, match="[Ww]eights.only"):  # torch's weights-only loading
            direct_lr_find(run_dir, res, tmp_path, plugins=[])
        finder = direct_lr_find(run_dir, res, tmp_path, plugins=[_OwnCheckpoint()])
    finally:
        torch.set_num_threads(threads)
    (lab,) = res["finders"]
    assert finder.results["lr"] == pytest.approx(lab["lr"], rel=1e-6)
    assert finder.results["loss"] == pytest.approx(lab["loss"], rel=1e-6)
    assert finder.suggestion() == pytest.approx(lab["rules"]["lightning"], rel=1e-6)
