from __future__ import annotations

import math

from lr_lab.experiment import INIT_FILE, prepare_initial_state, seed_dir
from lr_lab.finder import run_finder
from tests.conftest import tiny_config
from tests.tb import scalars


def test_finder_records_curve_restores_weights_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a stray .lr_find_*.ckpt in the working directory would show
    cfg = tiny_config()
    folder = seed_dir(tmp_path / "run", 0)
    sha = prepare_initial_state(cfg, 0, folder, None, None)
    result = run_finder(cfg, 0, folder / INIT_FILE, folder)
    # run_finder itself checks that the module's weights equal init.ckpt after the search.
    assert result.init_sha256 == sha
    assert len(result.lr) == len(result.loss) > 13
    assert result.lr == sorted(result.lr) and math.isclose(result.lr[0], cfg.finder.min_lr)
    assert result.suggestion is not None and result.lightning_version
    leftovers = [p for p in tmp_path.rglob("*") if "lr_find" in p.name]
    assert leftovers == []
    curve = scalars(folder / "finder")
    assert len(curve["finder/lr"]) == len(result.lr)


def test_finder_that_stops_early_is_flagged(tmp_path):
    cfg = tiny_config(finder__max_lr=1e4, finder__num_training=60, finder__early_stop_threshold=1.5)
    folder = seed_dir(tmp_path, 0)
    prepare_initial_state(cfg, 0, folder, None, None)
    result = run_finder(cfg, 0, folder / INIT_FILE, folder)
    assert result.stopped_early and len(result.loss) < 60
