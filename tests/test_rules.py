from __future__ import annotations

import math

import numpy as np
import pytest

from lr_lab.rules import (
    CURVE_RULES,
    SKIP_BEGIN,
    SKIP_END,
    Suggestion,
    apply_rules,
    minimum_div10,
    steep_log,
    valley,
)

RULES = [steep_log, valley, minimum_div10]
RULE_IDS = [rule.__name__ for rule in RULES]

# The sweep: 101 points, one every 0.1 decade, from 1e-8 to 1e2 (x = log10(lr) = -8 + 0.1 k).
LRS = np.logspace(-8, 2, 101)
X = np.log10(LRS)
STEP = 0.1  # decades between points
ONE_STEP = 10**STEP  # LR ratio between neighbouring points

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


def decades(lr: float, x: float) -> float:
    """How many decades ``lr`` lies from ``10**x``."""
    return abs(math.log10(lr) - x)


def test_curve_is_long_enough_to_survive_the_skips():
    assert len(LRS) - SKIP_BEGIN - SKIP_END > 80
    assert np.isclose(X[SKIP_BEGIN], -7.0)


# ---------------------------------------------------------------- clean valley


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
    s = steep_log(LRS, losses)
    assert s.lr == pytest.approx(10**x0, rel=1e-9)


def test_steep_log_weighs_decades_not_raw_lr():
    # A small dip of 0.05 around 10^-6.5 (log-slope ~0.13/decade) next to the real fall
    # (log-slope ~0.79/decade). Against the raw LR the dip is ~1000x steeper (the LR is 1000x
    # smaller), against log10(LR) the real fall wins.
    dip = np.clip((X + 6.8) / 0.6, 0.0, 1.0)
    losses = CLEAN + 0.05 * (1 - (1 - np.cos(np.pi * dip)) / 2)
    raw_slope = np.gradient(losses[SKIP_BEGIN:-SKIP_END], LRS[SKIP_BEGIN:-SKIP_END])
    assert decades(LRS[SKIP_BEGIN:-SKIP_END][np.argmin(raw_slope)], -6.5) < 0.35  # the trap
    assert steep_log(LRS, losses).lr == pytest.approx(10**STEEPEST_X, rel=1e-9)


def test_valley_clean_valley_lands_just_past_the_middle_of_the_fall():
    # After the skips, index t is x = -7 + 0.1 t. The fall is t = 21..50 (t = 20 is still 2.0),
    # so the longest decreasing run ends at t = 50 (the minimum) with length 31 (one flat point
    # plus 30 falling ones): start = 50 - 31 = 19, third = 31 / 3, and fastai's index is
    # 19 + int(10.33) + int(5.17) = 34, i.e. x = -3.6.
    s = valley(LRS, CLEAN)
    assert 10**FALL_START < s.lr < 10**MINIMUM_X
    assert s.lr == pytest.approx(10**-3.6, rel=1e-9)
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
    assert -3.0 < true_min_x < -1.0  # sanity: a real valley bottom inside the sweep
    s = minimum_div10(LRS, f(X))
    assert decades(s.lr * 10, true_min_x) <= STEP / 2 + 1e-9  # nearest sweep point


def test_first_points_are_skipped():
    # A huge fall within the first SKIP_BEGIN points (the noisy start of the moving average)
    # must not change anything.
    losses = CLEAN.copy()
    losses[:SKIP_BEGIN] = np.linspace(50.0, 2.5, SKIP_BEGIN)
    for rule in RULES:
        assert rule(LRS, losses) == rule(LRS, CLEAN)


# ---------------------------------------------------------------- noisy valley


@pytest.mark.parametrize("seed", range(5))
def test_noisy_valley_stays_in_the_falling_region(seed):
    noisy = CLEAN + np.random.default_rng(seed).normal(0.0, 0.01, len(CLEAN))
    steep, val, mini = steep_log(LRS, noisy), valley(LRS, noisy), minimum_div10(LRS, noisy)
    for s in (steep, val):
        assert 10**FALL_START < s.lr < 10**FALL_END, s
    # Within half a decade (a factor ~3.2) of the clean answers.
    assert decades(steep.lr, STEEPEST_X) <= 0.5
    assert decades(val.lr, -3.6) <= 0.5
    assert decades(mini.lr, MINIMUM_X - 1) <= 0.5
    assert mini.lr < 10**MINIMUM_X


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
    truncated = rule(LRS[:N_FINITE], CLEAN[:N_FINITE])
    assert with_tail.lr is not None
    assert with_tail == truncated == rule(LRS, CLEAN)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_non_finite_points_inside_the_flat_part_are_dropped(rule):
    losses = CLEAN.copy()
    losses[[15, 22, 27]] = [math.nan, math.inf, -math.inf]  # x = -6.5, -5.8, -5.3
    assert rule(LRS, losses) == rule(LRS, CLEAN)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_non_positive_or_non_finite_lrs_are_dropped(rule):
    lrs = LRS.copy()
    lrs[[15, 22]] = [0.0, math.nan]
    assert rule(lrs, CLEAN) == rule(LRS, CLEAN)


# ---------------------------------------------------------------- unreadable curves


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize(
    "losses",
    [
        np.full(101, 2.3),
        np.zeros(101),
        2.3 + np.random.default_rng(0).normal(0.0, 1e-5, 101),  # spread << 1e-3 * 2.3
        np.r_[np.linspace(9.0, 2.3, SKIP_BEGIN), np.full(101 - SKIP_BEGIN, 2.3)],  # fall skipped
    ],
    ids=["constant", "zeros", "tiny-noise", "fall-only-in-skipped-points"],
)
def test_flat_curve_gives_none_and_says_flat(rule, losses):
    s = rule(LRS, losses)
    assert s.lr is None
    assert "flat" in s.note


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("n", [0, 1, 5, SKIP_BEGIN, SKIP_BEGIN + SKIP_END, 12])
def test_too_short_curve_gives_none_with_a_note(rule, n):
    lrs = np.logspace(-6, 0, n)
    s = rule(lrs, valley_curve(np.log10(lrs)) if n else [])
    assert s.lr is None
    assert "too few" in s.note
    assert f"({max(0, n - SKIP_BEGIN - SKIP_END)} after skipping" in s.note


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_all_nan_curve_is_too_short(rule):
    s = rule(LRS, np.full(101, math.nan))
    assert s.lr is None and "too few" in s.note


def test_shortest_readable_curve():
    # 14 points leave 3 after the skips: the minimum is enough for every rule.
    lrs = np.logspace(-3, 0, 14)
    losses = np.r_[np.full(SKIP_BEGIN, 9.0), [3.0, 1.5, 1.0], [7.0]]  # slopes/step -1.5, -1, -0.5
    assert steep_log(lrs, losses).lr == pytest.approx(lrs[SKIP_BEGIN])
    # valley: run of 3 ending at t = 2, start = 2 - 3 = -1, third = 1: index -1 + 1 + 0 = 0.
    assert valley(lrs, losses).lr == pytest.approx(lrs[SKIP_BEGIN])
    assert minimum_div10(lrs, losses).lr == pytest.approx(lrs[SKIP_BEGIN + 2] / 10)


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
@pytest.mark.parametrize("shape", ["linear", "exponential"])
def test_rising_curve_gives_none(rule, shape):
    losses = X + 10.0 if shape == "linear" else 1.0 + np.exp(X / 2)
    s = rule(LRS, losses)
    assert s.lr is None
    assert s.note
    assert "flat" not in s.note and "too few" not in s.note


def test_rising_curve_notes():
    losses = X + 10.0
    assert "never falls" in steep_log(LRS, losses).note
    assert "no decreasing stretch" in valley(LRS, losses).note
    assert "never fell" in minimum_div10(LRS, losses).note


def test_falling_then_flat_minimum_div10_and_steep_log():
    # Falls all the way to the end (no explosion): the lowest point is the last one kept.
    losses = 3.0 - np.tanh(X + 3.0)
    assert steep_log(LRS, losses).lr == pytest.approx(1e-3, rel=1e-9)
    assert minimum_div10(LRS, losses).lr == pytest.approx(LRS[-1 - SKIP_END] / 10)


# ---------------------------------------------------------------- apply_rules


def test_apply_rules_runs_each_curve_rule_in_order():
    names = ["minimum_div10", "steep_log", "valley"]
    out = apply_rules(names, LRS, CLEAN, lightning_lr=None)
    assert list(out) == names
    assert out["steep_log"].lr == pytest.approx(10**STEEPEST_X, rel=1e-9)
    assert out["valley"].lr == pytest.approx(10**-3.6, rel=1e-9)
    assert out["minimum_div10"].lr == pytest.approx(10**MINIMUM_X / 10, rel=1e-9)
    for name in names:
        assert out[name] == CURVE_RULES[name](LRS, CLEAN)


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


def test_apply_rules_empty_and_unknown():
    assert apply_rules([], LRS, CLEAN, 0.1) == {}
    with pytest.raises(KeyError):
        apply_rules(["no_such_rule"], LRS, CLEAN, None)
