"""Tests of lr_lab.finder.rules: hand-computed readings, reference fixtures and hostile curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lr_lab.finder.rules import (
    CURVE_RULES,
    MIN_POINTS,
    SKIP_BEGIN,
    SKIP_END,
    Suggestion,
    apply_rules,
    minimum_div10,
    skip_begin,
    steep_log,
    trim,
    valley,
)

RULES = [steep_log, valley, minimum_div10]
RULE_IDS = [rule.__name__ for rule in RULES]

# The sweep: 101 points, one every 0.1 decade, from 1e-8 to 1e2 (x = log10(lr) = -8 + 0.1 k).
LRS = np.logspace(-8, 2, 101)
X = np.log10(LRS)
STEP = 0.1  # decades between points

# The clean valley: flat at 2.0 up to 1e-5, a half-cosine fall to 0.5 at 1e-2 (steepest in the
# middle, at 10^-3.5; slope zero at both ends), then a parabola in log10(lr) that explodes.
FALL_START, FALL_END = -5.0, -2.0
HIGH, LOW = 2.0, 0.5


def valley_curve(x: np.ndarray) -> np.ndarray:
    mid, half = (HIGH + LOW) / 2, (HIGH - LOW) / 2
    fall = mid + half * np.cos(np.pi * (x - FALL_START) / (FALL_END - FALL_START))
    rise = LOW + 3.0 * (x - FALL_END) ** 2
    return np.where(x < FALL_START, HIGH, np.where(x <= FALL_END, fall, rise))


CLEAN = valley_curve(X)
STEEPEST_X = (FALL_START + FALL_END) / 2  # -3.5: the cosine's inflection point
MINIMUM_X = FALL_END  # -2.0: the parabola's vertex
VALLEY_X = -3.6  # fastai's index on CLEAN, worked out in test_valley_clean_valley_...


def decades(lr: float, x: float) -> float:
    """How many decades ``lr`` lies from ``10**x``."""
    return abs(math.log10(lr) - x)


def lightning_lrs(lo: float, hi: float, n: int) -> np.ndarray:
    """The LRs Lightning 2.6 records in exponential mode: lo, then lo * (hi/lo)**((i+1)/n)."""
    lrs = lo * (hi / lo) ** ((np.arange(n) + 1) / n)
    lrs[0] = lo
    return lrs


def lightning_ema(raw: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Lightning 2.6's smoothed loss: a moving average divided by 1 - beta**(global_step + 1).

    The global step is already 1 at the first batch, so the first points are biased low (by
    half at step 0) exactly as in a real finder curve.
    """
    out, avg = np.empty(len(raw)), 0.0
    for t, value in enumerate(raw):
        avg = beta * avg + (1 - beta) * value
        out[t] = avg / (1 - beta ** (t + 2))
    return out


def numbers(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=float)


# Real finder curves recorded by this lab (Lightning 2.6.6, lr_lab at 5be2dd8, seed as noted),
# printed to 6 significant digits. REAL_VALLEY: configs/default.yaml, seed 0, 100 steps over
# 1e-6..1. REAL_FLAT: the same with finder.min_lr 1e-9, max_lr 1e-7, where nothing learns: the
# curve only wanders with the batch noise. REAL_SHORT: default.yaml, seed 4, num_training 30.
REAL_VALLEY = numbers(
    """
    3.17247 3.65783 4.39482 4.94819 5.37272 5.21247 5.46867 5.64148 5.85063 5.82436 5.85787
    5.83813 5.99239 5.97974 5.99876 5.95334 5.98585 6.06725 6.02103 6.01588 5.97697 6.04437
    6.1435 6.15201 6.13689 6.21643 6.08896 6.11705 6.08341 6.09692 6.19009 6.14019 6.17391
    6.11447 6.1405 6.1588 6.28594 6.35226 6.26263 6.28741 6.33343 6.36256 6.3924 6.37754 6.39497
    6.36033 6.32627 6.31701 6.26238 6.25328 6.2745 6.21372 6.21492 6.25312 6.20641 6.29249
    6.22659 6.2315 6.15607 6.13302 6.13694 6.1012 6.07171 6.03254 5.97004 5.91128 5.88367
    5.83187 5.76603 5.68332 5.60241 5.50949 5.39141 5.27791 5.16199 5.03516 4.90949 4.78749
    4.66918 4.55404 4.44226 4.3337 4.22833 4.12597 4.02654 3.93216 3.86706 4.11197 4.26643
    4.3098 4.29707 4.28758 4.35377 4.37942 4.37615 4.42939 4.46566 4.45797 4.46309 4.49543
    """
)
REAL_FLAT = numbers(
    """
    3.17247 3.65783 4.39484 4.94824 5.3728 5.21256 5.46879 5.64165 5.85086 5.82463 5.85821
    5.83851 5.99286 5.98028 5.99939 5.95406 5.98666 6.06822 6.02206 6.01705 5.97828 6.04587
    6.14531 6.15402 6.13917 6.2191 6.09176 6.12021 6.08691 6.10087 6.19491 6.14552 6.17989
    6.12098 6.14799 6.16739 6.29662 6.36492 6.27602 6.30274 6.35143 6.38388 6.41663 6.40471
    6.42594 6.39418 6.36389 6.35959 6.30779 6.30455 6.33378 6.27744 6.28606 6.33763 6.29822
    6.40757 6.34987 6.37464 6.30976 6.30525 6.33703 6.32332 6.32535 6.31968 6.28603 6.26463
    6.29239 6.30031 6.29896 6.27916 6.28461 6.28879 6.23447 6.23936 6.28877 6.29323 6.28174
    6.31626 6.30492 6.34927 6.31808 6.34521 6.33493 6.30025 6.29936 6.30395 6.30976 6.33743
    6.32865 6.34188 6.323 6.30413 6.34514 6.3531 6.37101 6.34385 6.33951 6.30016 6.27748 6.28073
    """
)
REAL_SHORT = numbers(
    """
    4.25539 5.18843 5.57722 5.85943 6.2544 6.44458 6.39257 6.9086 7.02968 7.0253 7.07945 6.99198
    7.05824 7.10703 7.20395 7.18691 7.25297 7.16709 7.10803 7.0157 6.93773 6.79662 6.57003
    6.33601 6.04047 5.81857 5.9768 5.93448 5.93716 5.89331
    """
)


def reference_curves() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The curves the reference fixtures below were computed on, by name."""
    curves = {"clean": (LRS, CLEAN)}
    for x0 in (-5.0, -4.0, -3.0):
        for width in (0.3, 0.6):
            losses = 1.0 + 1.5 / (1.0 + np.exp((X - x0) / width)) + np.exp((X - 1.5) / 0.2)
            curves[f"logistic{x0:g}w{width:g}"] = (LRS, losses)
    for seed in range(4):
        white = np.random.default_rng(seed).normal(0.0, 0.01, len(CLEAN))
        curves[f"white{seed}"] = (LRS, CLEAN + white)
        # Batch losses around a 6 -> 3 valley with unit noise, smoothed as Lightning does.
        batch = 1.0 + 2.0 * valley_curve(X) + np.random.default_rng(10 + seed).normal(0, 1, 101)
        curves[f"ema{seed}"] = (LRS, lightning_ema(batch))
    for n in (14, 17, 20, 30):
        lrs = lightning_lrs(1e-6, 1.0, n)
        x = np.log10(lrs)
        clean = 1.0 + 1.5 / (1.0 + np.exp((x + 3.0) / 0.5)) + np.exp((x + 0.3) / 0.15)
        curves[f"short{n}"] = (lrs, clean + np.random.default_rng(n).normal(0.0, 0.005, n))
    curves["offset"] = (LRS, 1e4 + (CLEAN - LOW) / 3)  # 10000 + a fall of 0.5, a rise of 15
    curves["negative"] = (LRS, CLEAN - 10.0)
    holes = CLEAN.copy()
    holes[[15, 40, 60]] = [math.nan, math.inf, -math.inf]
    holes[88:] = math.nan
    curves["nonfinite"] = (LRS, holes)
    lin = np.linspace(0.01, 1.0, 100)  # a linear-mode sweep
    lin_loss = 2 - 1.5 * np.tanh(lin / 0.2) + 8 * np.maximum(lin - 0.6, 0) ** 2
    curves["linear"] = (lin, lin_loss + np.random.default_rng(7).normal(0.0, 0.002, 100))
    curves["real_valley"] = (lightning_lrs(1e-6, 1.0, 100), REAL_VALLEY)
    curves["real_flat"] = (lightning_lrs(1e-9, 1e-7, 100), REAL_FLAT)
    curves["real_short"] = (lightning_lrs(1e-6, 1.0, 30), REAL_SHORT)
    return curves


CURVES = reference_curves()

# ---------------------------------------------------------------- reference implementations

# Produced by running the reference libraries on CURVES, in a scratch venv (Python 3.11, numpy
# 2.4.6, torch 2.14.1 CPU, fastai 2.8.12, torch-lr-finder 0.2.2): each curve trimmed as the rules
# trim it (drop the first min(10, n // 10) points and the last one, then every point with a
# non-finite loss or LR), passed as float64 tensors to fastai.callback.schedule.valley / minimum /
# steep (num_it=100, unused by them), and set as LRFinder.history for torch_lr_finder's
# LRFinder.plot(skip_start=0, skip_end=0, log_lr=True, suggest_lr=True). fastai's own lr_find
# would trim num_it // 10 and 5 points and pass float32 tensors; the same input is what compares
# the algorithms.
FASTAI = {  # name: (valley, minimum, steep)
    "clean": (0.0002511886431509582, 0.001, 0.0002511886431509582),
    "logistic-5w0.3": (7.943282347242822e-05, 0.007943282347242822, 7.943282347242822e-06),
    "logistic-5w0.6": (0.00019952623149688788, 0.06309573444801943, 7.943282347242822e-06),
    "logistic-4w0.3": (0.0001, 0.019952623149688826, 7.943282347242822e-05),
    "logistic-4w0.6": (0.00019952623149688788, 0.1, 7.943282347242822e-05),
    "logistic-3w0.3": (0.00015848931924611142, 0.05011872336272725, 0.0007943282347242822),
    "logistic-3w0.6": (0.00031622776601683794, 0.19952623149688828, 0.0007943282347242822),
    "white0": (0.00015848931924611142, 0.001, 7.943282347242822e-05),
    "ema0": (0.0012589254117941688, 0.003162277660168379, 0.002511886431509582),
    "white1": (0.00015848931924611142, 0.001, 0.00015848931924611142),
    "ema1": (0.00039810717055349773, 0.003162277660168379, 0.005011872336272725),
    "white2": (0.0001, 0.0007943282347242821, 0.0005011872336272725),
    "ema2": (0.00039810717055349773, 0.003162277660168379, 1.2589254117941662e-07),
    "white3": (0.00019952623149688788, 0.001, 0.00012589254117941688),
    "ema3": (0.0006309573444801943, 0.005011872336272725, 3.981071705534969e-07),
    "short14": (0.00013894954943731376, 0.013894954943731367, 0.0003727593720314939),
    "short17": (0.00029552092352028863, 0.008733261623828429, 0.0006660846290809158),
    "short20": (0.00025118864315095806, 0.0063095734448019355, 0.001),
    "short30": (0.0006309573444801933, 0.010000000000000004, 0.001),
    "offset": (0.0002511886431509582, 0.001, 0.0002511886431509582),
    "negative": (0.0002511886431509582, 0.001, 0.0002511886431509582),
    "nonfinite": (0.00019952623149688788, 0.0007943282347242821, 0.0002511886431509582),
    "linear": (0.37, 0.06, 0.16),
    "real_valley": (0.012022644346174135, 0.016595869074375606, 3.630780547701014e-05),
    "real_flat": (6.60693448007596e-08, 1.7378008287493755e-10, 3.311311214825911e-09),
    "real_short": (0.02511886431509578, 0.01584893192461114, 0.06309573444801936),
}
TORCH_LR_FINDER = {
    "clean": 0.00031622776601683794,
    "logistic-5w0.3": 9.999999999999999e-06,
    "logistic-5w0.6": 9.999999999999999e-06,
    "logistic-4w0.3": 0.0001,
    "logistic-4w0.6": 0.0001,
    "logistic-3w0.3": 0.001,
    "logistic-3w0.6": 0.001,
    "white0": 0.0002511886431509582,
    "ema0": 0.0031622776601683794,
    "white1": 0.00039810717055349773,
    "ema1": 0.00031622776601683794,
    "white2": 0.00015848931924611142,
    "ema2": 0.0005011872336272725,
    "white3": 0.00015848931924611142,
    "ema3": 0.00794328234724282,
    "short14": 0.001,
    "short17": 0.0006660846290809158,
    "short20": 0.001,
    "short30": 0.001,
    "offset": 0.00031622776601683794,
    "negative": 0.00031622776601683794,
    "nonfinite": 0.00012589254117941688,
    "linear": 0.11,
    "real_valley": 0.03630780547701014,
    "real_flat": 3.4673685045253167e-09,
    "real_short": 0.06309573444801936,
}
DECLINED = {"real_flat"}  # the rules decline these (fastai and torch-lr-finder still answer)
READABLE = [name for name in CURVES if name not in DECLINED]
# torch-lr-finder takes the gradient against the step index: the same ranking as against
# log10(LR) only where the kept points are evenly spaced in log10(LR).
LOG_SPACED = [name for name in READABLE if name not in ("linear", "nonfinite")]


def test_fixture_curves_are_the_ones_the_fixtures_were_made_from():
    # Guards against a drift in numpy's random streams or the builders above.
    assert CURVES["white0"][1][50] == pytest.approx(0.87857380, abs=1e-7)
    assert CURVES["ema0"][1][50] == pytest.approx(4.27486011, abs=1e-7)
    assert CURVES["short14"][1][5] == pytest.approx(2.05933309, abs=1e-7)
    assert CURVES["linear"][1][10] == pytest.approx(1.25019937, abs=1e-7)


@pytest.mark.parametrize("name", READABLE)
def test_valley_and_minimum_div10_equal_fastai(name):
    lrs, losses = CURVES[name]
    fastai_valley, fastai_minimum, _ = FASTAI[name]
    assert valley(lrs, losses).lr == pytest.approx(fastai_valley, rel=1e-12)
    assert minimum_div10(lrs, losses).lr == pytest.approx(fastai_minimum, rel=1e-12)


@pytest.mark.parametrize("name", LOG_SPACED)
def test_steep_log_equals_torch_lr_finder_on_log_spaced_sweeps(name):
    lrs, losses = CURVES[name]
    assert steep_log(lrs, losses).lr == pytest.approx(TORCH_LR_FINDER[name], rel=1e-12)


def test_steep_log_is_not_fastai_steep():
    # fastai's steep takes forward differences against ln(LR) and returns the LR at the *start*
    # of the steepest step: on a logistic centred on a grid point it lands one step low.
    for x0 in (-5, -4, -3):
        for width in (0.3, 0.6):
            lrs, losses = CURVES[f"logistic{x0}w{width:g}"]
            assert steep_log(lrs, losses).lr == pytest.approx(10.0**x0, rel=1e-9)
            assert FASTAI[f"logistic{x0}w{width:g}"][2] == pytest.approx(10 ** (x0 - STEP))
    differ = [n for n in LOG_SPACED if not math.isclose(steep_log(*CURVES[n]).lr, FASTAI[n][2])]
    assert len(differ) >= len(LOG_SPACED) // 2


def test_steep_log_against_torch_lr_finder_where_the_spacing_is_not_even():
    # On a linear sweep (and across dropped points) the index is not log10(LR): they differ.
    for name in ("linear", "nonfinite"):
        assert steep_log(*CURVES[name]).lr != pytest.approx(TORCH_LR_FINDER[name], rel=1e-3)


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_noise_only_curves_are_declined_where_the_references_answer(name):
    assert FASTAI[name][0] > 0 and TORCH_LR_FINDER[name] > 0  # they read a value off noise
    for rule in RULES:
        s = rule(*CURVES[name])
        assert s.lr is None and "never falls by more than its noise" in s.note


def lightning_suggestion(lrs, losses) -> float | None:
    """What Lightning's own LRFinder.suggestion() returns for this curve."""
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    finder = _LRFinder("exponential", float(lrs[0]), float(lrs[-1]), len(lrs))
    finder.results = {"lr": [float(v) for v in lrs], "loss": [float(v) for v in losses]}
    return finder.suggestion()


@pytest.mark.parametrize("name", list(CURVES))
def test_lightning_rule_is_lightnings_own_suggestion(name):
    lrs, losses = CURVES[name]
    expected = lightning_suggestion(lrs, losses)
    # Lightning 2.6.6 reads the steepest slope against the *raw* LR, with a fixed skip of the
    # first 10 and the last point, whatever the sweep's length (float32, as torch.tensor makes).
    lr = np.asarray(lrs, np.float32)[SKIP_BEGIN:-SKIP_END]
    loss = np.asarray(losses, np.float32)[SKIP_BEGIN:-SKIP_END]
    finite = np.isfinite(loss)
    assert expected == pytest.approx(lr[finite][np.argmin(np.gradient(loss[finite], lr[finite]))])
    out = apply_rules(["lightning", "steep_log"], lrs, losses, expected, "unused")
    assert out["lightning"] == Suggestion(expected, "")


def test_lightning_reads_the_tiny_lr_wiggle_steep_log_reads_the_fall():
    # A small dip of 0.05 around 10^-6.5 (log-slope ~0.13/decade) before the real fall
    # (log-slope ~0.79/decade). Against the raw LR the dip is ~1000x steeper, as the LR is 1000x
    # smaller: Lightning's own suggestion lands in it (Lightning #21141), steep_log does not.
    dip = np.clip((X + 6.8) / 0.6, 0.0, 1.0)
    losses = CLEAN + 0.05 * (1 - (1 - np.cos(np.pi * dip)) / 2)
    assert decades(lightning_suggestion(LRS, losses), -6.5) < 0.35
    assert steep_log(LRS, losses).lr == pytest.approx(10**STEEPEST_X, rel=1e-9)


# ---------------------------------------------------------------- clean valley, by hand


def test_steep_log_clean_valley_is_the_inflection_point():
    s = steep_log(LRS, CLEAN)
    assert s.lr == pytest.approx(10**STEEPEST_X, rel=1e-9)
    assert s.note == ""


@pytest.mark.parametrize("x0", [-5.0, -4.0, -3.0])
@pytest.mark.parametrize("width", [0.3, 0.6])
def test_steep_log_logistic_in_log_lr(x0, width):
    # 1 + 1.5 * (1 - sigmoid((x - x0) / w)): steepest exactly at x0, slope there -1.5 / (4 w).
    # The explosion term is ~e^-15 at x0 so it cannot move the steepest point.
    losses = 1.0 + 1.5 / (1.0 + np.exp((X - x0) / width)) + np.exp((X - 1.5) / 0.2)
    assert steep_log(LRS, losses).lr == pytest.approx(10**x0, rel=1e-9)


def test_valley_clean_valley_lands_just_past_the_middle_of_the_fall():
    # After the skips, index t is x = -7 + 0.1 t. The fall is t = 21..50 (t = 20 is still 2.0),
    # so the longest decreasing run ends at t = 50 (the minimum) with length 31 (one flat point
    # plus 30 falling ones): start = 50 - 31 = 19, third = 31 / 3, and fastai's index is
    # 19 + int(10.33) + int(5.17) = 34, i.e. x = -3.6.
    s = valley(LRS, CLEAN)
    assert s.lr == pytest.approx(10**VALLEY_X, rel=1e-9)
    assert s.note == ""


def test_minimum_div10_clean_valley_is_a_tenth_of_the_vertex():
    s = minimum_div10(LRS, CLEAN)
    assert s.lr == pytest.approx(10**MINIMUM_X / 10, rel=1e-9)
    assert s.note == ""


def test_minimum_div10_logistic_plus_explosion():
    def f(x):
        return 1.0 + 1.5 / (1.0 + np.exp((x + 4.0) / 0.5)) + 0.05 * np.exp((x + 1.0) / 0.4)

    fine = np.linspace(-7.0, 1.9, 890_001)  # the analytic minimum, to 1e-5 decades
    true_min_x = fine[np.argmin(f(fine))]
    s = minimum_div10(LRS, f(X))
    assert decades(s.lr * 10, true_min_x) <= STEP / 2 + 1e-9  # nearest sweep point


def test_first_points_are_skipped():
    # A huge fall within the first SKIP_BEGIN points (the noisy start of the moving average)
    # must not change anything.
    losses = CLEAN.copy()
    losses[:SKIP_BEGIN] = np.linspace(50.0, 2.5, SKIP_BEGIN)
    for rule in RULES:
        assert rule(LRS, losses) == rule(LRS, CLEAN)


def test_falling_to_the_end_minimum_div10_and_steep_log():
    # Falls all the way to the end (no explosion): the lowest point is the last one kept.
    losses = 3.0 - np.tanh(X + 3.0)
    assert steep_log(LRS, losses).lr == pytest.approx(1e-3, rel=1e-9)
    assert minimum_div10(LRS, losses).lr == pytest.approx(LRS[-1 - SKIP_END] / 10)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_valley_stays_in_the_falling_region(seed):
    noisy = CLEAN + np.random.default_rng(seed).normal(0.0, 0.01, len(CLEAN))
    steep, val, mini = steep_log(LRS, noisy), valley(LRS, noisy), minimum_div10(LRS, noisy)
    for s in (steep, val):
        assert 10**FALL_START < s.lr < 10**FALL_END, s
    assert decades(steep.lr, STEEPEST_X) <= 0.5  # within a factor ~3.2 of the clean answers
    assert decades(val.lr, VALLEY_X) <= 0.5
    assert decades(mini.lr, MINIMUM_X - 1) <= 0.5


# ---------------------------------------------------------------- short sweeps


@pytest.mark.parametrize(("n", "skipped"), [(0, 0), (9, 0), (14, 1), (20, 2), (99, 9), (100, 10)])
def test_skip_scales_with_the_sweep_up_to_lightnings_ten(n, skipped):
    assert skip_begin(n) == skipped
    assert skip_begin(10_000) == SKIP_BEGIN


@pytest.mark.parametrize("n", [14, 17, 20])
def test_short_sweep_fall_in_the_first_ten_points_is_read(n):
    # A 14-20 point sweep over 1e-6..1 whose whole fall (2.5 -> 1, steepest at 1e-4) lies within
    # its first 10 points, then explodes. A fixed skip of 10 hides the fall: the rules would read
    # only the explosion, or nothing.
    lrs = lightning_lrs(1e-6, 1.0, n)
    x = np.log10(lrs)
    losses = 1.0 + 1.5 / (1.0 + np.exp((x + 4.0) / 0.4)) + np.exp((x + 2.5) / 0.3)
    assert np.argmin(losses) < SKIP_BEGIN
    steep, val, mini = (rule(lrs, losses) for rule in RULES)
    assert decades(steep.lr, -4.0) <= 0.35  # the nearest point to the inflection
    assert 1e-6 < val.lr < lrs[np.argmin(losses)]
    assert mini.lr == pytest.approx(lrs[np.argmin(losses)] / 10)


# ---------------------------------------------------------------- flatness and noise


def test_offset_valley_is_read_as_without_the_offset():
    # 10000 + a clean valley 0.5 deep that rises to 1 (its spread is 1e-4 of the loss), yet as
    # clear a valley as any: flatness is judged against the curve's own jitter, not its size.
    base = np.minimum(CLEAN - LOW, 3.0) / 3
    for offset in (1e4, 1e5, -10.0):
        for rule in RULES:
            s = rule(LRS, offset + base)
            assert s.lr is not None, (offset, s)
            assert s == rule(LRS, base)


@pytest.mark.parametrize("factor", [1e-300, 1e-6, 1e6, 1e300, 1.7e308 / CLEAN.max()])
def test_readings_do_not_depend_on_the_loss_scale(factor):
    # Up to the largest double: no difference may overflow to inf or NaN.
    for rule in RULES:
        assert rule(LRS, CLEAN * factor) == rule(LRS, CLEAN)


@pytest.mark.parametrize("level", [2.3, 1e4, -50.0])
@pytest.mark.parametrize("sigma", [1e-5, 0.01, 0.3])
def test_white_noise_without_a_fall_is_declined(level, sigma):
    # Spread ~5 sigma at any level: the old bar (1e-3 of the loss) read most of these.
    for seed in range(3):
        losses = level + np.random.default_rng(seed).normal(0.0, sigma, 101)
        for rule in RULES:
            s = rule(LRS, losses)
            assert s.lr is None, (seed, rule.__name__)
            assert "flat" in s.note or "never falls by more than its noise" in s.note


def test_real_flat_finder_curve_is_declined_and_its_valley_twin_read():
    for rule in RULES:
        assert rule(*CURVES["real_flat"]).lr is None
        assert rule(*CURVES["real_valley"]).lr is not None
        assert rule(*CURVES["real_short"]).lr is not None


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize(
    "losses",
    [
        np.full(101, 2.3),
        np.zeros(101),
        np.r_[np.linspace(9.0, 2.3, SKIP_BEGIN), np.full(101 - SKIP_BEGIN, 2.3)],  # fall skipped
        2.3 + 1e-9 * (np.arange(101) % 2),  # float rounding, not a fall
    ],
    ids=["constant", "zeros", "fall-only-in-skipped-points", "rounding"],
)
def test_flat_curve_gives_none_and_says_flat(rule, losses):
    s = rule(LRS, losses)
    assert s.lr is None
    assert "flat" in s.note


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("shape", ["linear", "exponential", "noisy"])
def test_rising_curve_gives_none(rule, shape):
    losses = {
        "linear": X + 10.0,
        "exponential": 1.0 + np.exp(X / 2),
        "noisy": X + 10.0 + np.random.default_rng(0).normal(0.0, 0.02, 101),  # 0.1 per step
    }[shape]
    s = rule(LRS, losses)
    assert s.lr is None
    assert "never falls" in s.note


# ---------------------------------------------------------------- hostile input

HOSTILE = {
    "empty": ([], []),
    "all-nan": (LRS, np.full(101, math.nan)),
    "single-finite": (LRS, np.where(np.arange(101) == 50, 1.0, math.nan)),
    "four-finite": (LRS, np.where(np.arange(101) % 20 == 0, CLEAN, math.inf)),
    "all-inf": (LRS, np.full(101, math.inf)),
    "constant": (LRS, np.full(101, 7.0)),
    "rising": (LRS, np.exp(X)),
    "duplicated-lr": (np.r_[LRS[:50], LRS[49:100]], CLEAN),
    "decreasing-lrs": (LRS[::-1], CLEAN),
    "shuffled-lrs": (np.r_[LRS[:40], LRS[60:], LRS[40:60]], CLEAN),
}
HOSTILE_NOTES = {
    "empty": "too few",
    "all-nan": "too few",
    "single-finite": "too few",
    "four-finite": "too few",
    "all-inf": "too few",
    "constant": "flat",
    "rising": "never falls",
    "duplicated-lr": "do not increase",
    "decreasing-lrs": "do not increase",
    "shuffled-lrs": "do not increase",
}


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_curves_are_declined_with_a_reason(rule, case):
    s = rule(*HOSTILE[case])
    assert s.lr is None
    assert HOSTILE_NOTES[case] in s.note
    assert "\n" not in s.note


def test_duplicated_lr_names_the_step():
    lrs = np.r_[LRS[:50], LRS[49:100]]
    assert "lr[50] = " in steep_log(lrs, CLEAN).note


def test_steep_log_declines_a_non_finite_slope():
    # Strictly increasing LRs one double apart near 1e10 share their log10: zero spacing, so
    # slopes of +-inf or NaN. The old rule returned an LR picked among NaN slopes.
    lrs = [1e10]
    for _ in range(100):
        lrs.append(math.nextafter(lrs[-1], math.inf))
    s = steep_log(lrs, CLEAN)
    assert s.lr is None and "slope is not finite" in s.note
    # The other rules compare losses only, and read the valley at its index.
    assert valley(lrs, CLEAN).lr == lrs[np.searchsorted(X, VALLEY_X - 1e-9)]


def test_tenth_of_a_subnormal_lr_is_not_an_answer():
    # A 10-point sweep of the smallest doubles: the minimum is at 4 x 5e-324, whose tenth
    # rounds to 0.0, and an LR of 0 is no answer. The other rules still read the curve.
    lrs = 5e-324 * np.arange(1, 11)
    losses = [9.0, 5.0, 3.0, 1.0, 2.0, 4.0, 6.0, 8.0, 9.0, 9.5]
    s = minimum_div10(lrs, losses)
    assert s.lr is None and "not a positive number" in s.note
    assert valley(lrs, losses).lr == lrs[1]


# ---------------------------------------------------------------- non-finite points


N_FINITE = 86  # x up to 0.5: the explosion has started, the minimum and the fall are intact


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, "mixed"])
def test_non_finite_tail_is_ignored(rule, bad):
    losses = CLEAN.copy()
    if bad == "mixed":
        losses[N_FINITE:] = [math.nan, math.inf, -math.inf] * 5
    else:
        losses[N_FINITE:] = bad
    with_tail = rule(LRS, losses)
    assert with_tail.lr is not None
    assert with_tail == rule(LRS, CLEAN)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_non_finite_points_inside_the_flat_part_are_dropped(rule):
    losses = CLEAN.copy()
    losses[[15, 22, 27]] = [math.nan, math.inf, -math.inf]  # x = -6.5, -5.8, -5.3
    assert rule(LRS, losses) == rule(LRS, CLEAN)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_non_positive_or_non_finite_lrs_are_dropped(rule):
    lrs = LRS.copy()
    lrs[[15, 22, 30]] = [0.0, math.nan, -1.0]
    assert rule(lrs, CLEAN) == rule(LRS, CLEAN)


# ---------------------------------------------------------------- too short


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("n", [0, 1, 2, 5, MIN_POINTS])
def test_too_short_curve_gives_none_with_a_note(rule, n):
    lrs = np.logspace(-6, 0, n)
    s = rule(lrs, valley_curve(np.log10(lrs) - 1))
    assert s.lr is None
    assert f"too few finite points ({max(0, n - SKIP_END)} after skipping the first 0" in s.note


def test_shortest_readable_curve():
    # MIN_POINTS + 1 points: none skipped at the start (6 // 10 = 0), the last dropped. The fall
    # is monotone, so it has no jitter and any fall counts.
    lrs = np.logspace(-3, 0, MIN_POINTS + 1)
    losses = [4.0, 3.0, 1.5, 0.75, 0.5, 7.0]  # slopes per step -1 (one-sided), -1.25, -1.125, ...
    assert steep_log(lrs, losses).lr == pytest.approx(lrs[1])
    # valley: run of 5 ending at t = 4, start = -1, third = 5 / 3: index -1 + 1 + 0 = 0.
    assert valley(lrs, losses).lr == pytest.approx(lrs[0])
    assert minimum_div10(lrs, losses).lr == pytest.approx(lrs[4] / 10)
    assert all(rule(lrs[1:], losses[1:]).lr is None for rule in RULES)


# ---------------------------------------------------------------- trim and apply_rules


def test_trim_keeps_lightnings_order_skip_then_drop():
    lrs, losses = trim(LRS, CLEAN)[:2]
    assert len(lrs) == 101 - SKIP_BEGIN - SKIP_END
    assert lrs[0] == LRS[SKIP_BEGIN] and lrs[-1] == LRS[-1 - SKIP_END]


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_unequal_lengths_raise_one_line(rule):
    with pytest.raises(ValueError, match=r"same length, got 101 lrs and 100 losses") as err:
        rule(LRS, CLEAN[:100])
    assert "\n" not in str(err.value)


def test_apply_rules_runs_each_curve_rule_in_order():
    names = ["minimum_div10", "steep_log", "valley"]
    out = apply_rules(names, LRS, CLEAN, lightning_lr=None)
    assert list(out) == names
    assert out["steep_log"].lr == pytest.approx(10**STEEPEST_X, rel=1e-9)
    assert out["valley"].lr == pytest.approx(10**VALLEY_X, rel=1e-9)
    assert out["minimum_div10"].lr == pytest.approx(10**MINIMUM_X / 10, rel=1e-9)
    assert set(CURVE_RULES) == {"steep_log", "valley", "minimum_div10"}


def test_apply_rules_lightning_passthrough_drops_the_note_when_there_is_an_lr():
    out = apply_rules(["lightning", "steep_log"], LRS, CLEAN, 0.0123, "ignored")
    assert list(out) == ["lightning", "steep_log"]
    assert out["lightning"] == Suggestion(0.0123, "")


def test_apply_rules_lightning_none_keeps_its_note():
    out = apply_rules(["lightning"], LRS, CLEAN, None, "Failed to compute suggestion")
    assert out == {"lightning": Suggestion(None, "Failed to compute suggestion")}


def test_apply_rules_lightning_ignores_the_curve():
    # The passthrough is taken as is, even for a curve the curve rules cannot read.
    out = apply_rules(["lightning", "valley"], [], [], 0.5)
    assert out["lightning"] == Suggestion(0.5, "")
    assert out["valley"].lr is None and "too few" in out["valley"].note


def test_apply_rules_flat_curve():
    out = apply_rules(["lightning", *CURVE_RULES], LRS, np.full(101, 1.0), None, "no lr")
    assert out["lightning"] == Suggestion(None, "no lr")
    for name in CURVE_RULES:
        assert out[name].lr is None and "flat" in out[name].note


def test_apply_rules_empty():
    assert apply_rules([], LRS, CLEAN, 0.1) == {}


def test_apply_rules_unknown_rule_is_a_one_line_value_error():
    with pytest.raises(ValueError, match=r"unknown rule 'steep': expected one of lightning") as e:
        apply_rules(["valley", "steep"], LRS, CLEAN, None)
    assert "\n" not in str(e.value)


def test_apply_rules_unequal_lengths_raise_even_for_lightning_alone():
    with pytest.raises(ValueError, match="same length, got 3 lrs and 2 losses"):
        apply_rules(["lightning"], [1e-3, 1e-2, 1e-1], [1.0, 2.0], 0.01)


def test_valley_declines_a_fall_of_two_points_and_minimum_reads_it():
    # A readable fall (one big drop after a steady rise), but no decreasing stretch of 3: fastai
    # would still answer; the lab's valley says why it does not.
    lrs = list(np.logspace(-5, 0, 60))
    loss = [*np.linspace(1, 10, 57), 0.5, 11.0, 12.0]
    assert valley(lrs, loss) == Suggestion(None, "no decreasing stretch of 3 or more points")
    assert minimum_div10(lrs, loss).lr == pytest.approx(lrs[57] / 10)


def test_minimum_div10_declines_a_lowest_loss_at_the_first_point_read():
    # The curve falls (from a peak after its start) but never below where it starts.
    lrs = list(np.logspace(-5, 0, 30))
    loss = [1.0] * 3 + [0.10, 0.9, 1.5, 2.0, 1.2, 0.8, 0.7, 1.6, 2.2, 2.6, 3.0, 2.0, 1.4, 1.1, 2.5,
                        3.0, 3.4, 3.6, 3.8, 4.0, 4.2, 4.5, 4.8, 5.0, 5.2, 5.5, 6.0]  # fmt: skip
    assert minimum_div10(lrs, loss) == Suggestion(
        None, "the lowest loss is at the smallest LR: the loss never fell"
    )
    assert valley(lrs, loss).lr is not None
