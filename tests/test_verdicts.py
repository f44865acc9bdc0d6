from __future__ import annotations

import math

import pytest

from lr_lab.analysis.measure import (
    FALLING_EPOCHS,
    FAR_FACTOR,
    OSCILLATION_JUMP,
    ROSE_FACTOR,
    VERDICTS,
    Measure,
    is_still_falling,
    is_unstable,
)

verdict = Measure().verdict  # a loss: lower is better, never below 0


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def steps(start: float, factors: list[float]) -> list[float]:
    """A history from ``start``, each epoch the previous one times a factor."""
    out = [start]
    for f in factors:
        out.append(out[-1] * f)
    return out


def with_jumps(n_transitions: int, n_jumps: int, jump: float) -> list[float]:
    """``n_transitions`` epoch-to-epoch changes: ``n_jumps`` rises by ``jump``, the rest -10%.

    The rises are spread out and the net trend is down, so the final loss stays far below
    ``ROSE_FACTOR`` times the minimum: only the oscillation test can fire.
    """
    factors = [0.9] * n_transitions
    for k in range(n_jumps):
        factors[1 + 2 * k] = jump
    return steps(1.0, factors)


# The README states the verdicts' numbers: a rise of more than 1.5x the run's lowest loss, jumps
# of more than 5 % of the loss and of the run's range in at least a third of the epochs, 2x the
# best loss, the last 3 epochs. The tests below check behaviour at each of those numbers, written
# as literals, so a changed constant shows up as changed behaviour.


@pytest.mark.parametrize(
    ("final", "expected"), [(below(3.0), False), (3.0, False), (above(3.0), True)]
)
def test_readme_rise_is_more_than_one_and_a_half_times_the_lowest(final, expected):
    # Falls to 2.0, then the final epoch: one rise in 9 transitions, too few to oscillate.
    history = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, final]
    assert is_unstable(history) is expected
    assert (verdict(history, False, final, final) == "unstable") is expected


@pytest.mark.parametrize(("jump", "expected"), [(1.05, False), (above(1.05), True)])
def test_readme_jump_is_more_than_five_percent_of_the_loss(jump, expected):
    # 6 transitions, 3 of them rises by ``jump``: a half, so only the jump size decides.
    assert is_unstable(with_jumps(6, 3, jump)) is expected


@pytest.mark.parametrize(("top", "expected"), [(11.0, False), (below(11.0), True)])
def test_readme_jump_is_more_than_five_percent_of_the_range(top, expected):
    # Rises of 0.5 (50 % of the loss) in 2 of 5 transitions; the range is top - 1, and 0.5 is
    # exactly 5 % of a range of 10.
    history = [top, 1.0, 1.5, 1.0, 1.5, 1.0]
    assert is_unstable(history) is expected


@pytest.mark.parametrize(
    ("n_transitions", "n_jumps", "expected"), [(10, 3, False), (10, 4, True), (12, 4, True)]
)
def test_readme_oscillation_is_at_least_a_third_of_the_epochs(n_transitions, n_jumps, expected):
    history = with_jumps(n_transitions, n_jumps, jump=1.06)
    assert history[-1] < 1.5 * min(history)  # only the oscillation test can fire
    assert is_unstable(history) is expected


@pytest.mark.parametrize(
    ("best", "expected"), [(2.1, "good"), (below(2.1), "slow"), (4.2, "best"), (1.0, "slow")]
)
def test_readme_far_is_more_than_twice_the_best(best, expected):
    assert verdict([8.0, 6.0, 5.0, 4.5, 4.2], False, final=4.2, best=best) == expected


def test_readme_still_falling_looks_at_the_last_three_epochs():
    assert is_still_falling([9.0, 9.0, 8.0, 7.0, 6.0])  # the flat epoch is 4 back
    assert not is_still_falling([9.0, 8.0, 8.0, 7.0, 6.0])  # ...3 back
    assert set(VERDICTS) == {"best", "good", "slow", "poor", "unstable", "diverged"}


# ---------------------------------------------------------------- is_unstable


@pytest.mark.parametrize("history", [[], [1.0], [math.nan], [math.nan, 5.0], [math.inf, 1.0]])
def test_is_unstable_needs_two_finite_epochs(history):
    assert not is_unstable(history)


def test_is_unstable_smooth_fall_is_stable():
    assert not is_unstable([4.0, 3.0, 2.0, 1.5, 1.2, 1.1, 1.0])


def test_is_unstable_rose_boundary():
    m = 2.0
    # 9 transitions, 1 jump (the final rise): 1 < 9 / 3, so only the rise test can fire.
    base = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, m]
    assert not is_unstable([*base, ROSE_FACTOR * m])  # exactly 1.5x the minimum: not unstable
    assert is_unstable([*base, above(ROSE_FACTOR * m)])


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([1.0, below(ROSE_FACTOR)], False),
        ([1.0, ROSE_FACTOR], False),  # two epochs: no oscillation test
        ([1.0, above(ROSE_FACTOR)], True),
        ([1.0, 3.0], True),
    ],
)
def test_is_unstable_two_epochs_only_the_rise_counts(history, expected):
    assert is_unstable(history) is expected


def test_is_unstable_minimum_is_over_the_whole_run_not_the_first_epoch():
    # The first epoch is the highest; the final is 1.6x the minimum reached mid-run.
    history = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.6, 1.6, 1.6, 1.6]
    assert is_unstable(history)


def test_is_unstable_ignores_non_finite_epochs():
    assert not is_unstable([4.0, math.nan, 3.0, math.inf, 2.0, 1.0])
    assert is_unstable([4.0, math.nan, 1.0, math.inf, 2.0])


@pytest.mark.parametrize(
    ("n_transitions", "n_jumps", "expected"),
    [
        (6, 1, False),  # 1/6 < 1/3
        (6, 2, True),  # exactly a third
        (9, 2, False),
        (9, 3, True),
        (7, 2, False),  # 2 < 7/3
        (7, 3, True),
        (2, 1, True),  # three epochs: one jump is half the transitions
    ],
)
def test_is_unstable_oscillation_share(n_transitions, n_jumps, expected):
    history = with_jumps(n_transitions, n_jumps, jump=1.06)
    assert history[-1] < min(history) * ROSE_FACTOR  # only the oscillation test can fire
    assert is_unstable(history) is expected


@pytest.mark.parametrize(
    ("jump", "expected"),
    [(OSCILLATION_JUMP, False), (below(OSCILLATION_JUMP), False), (above(OSCILLATION_JUMP), True)],
    ids=["exactly-5%", "just-under", "just-over"],
)
def test_is_unstable_oscillation_jump_boundary(jump, expected):
    # 6 transitions with 3 rises: a half of them, enough if the rises count as jumps.
    assert is_unstable(with_jumps(6, 3, jump)) is expected


def test_jitter_at_the_noise_floor_is_not_oscillation():
    # Converged from 2.5 to ~0.012, then +-8% jitter: big relative rises, tiny against the range.
    history = [2.5, 0.4, 0.05, 0.013, 0.012, 0.013, 0.012, 0.013, 0.012, 0.013]
    assert not is_unstable(history)
    assert verdict(history, False, final=0.013, best=0.012) == "good"
    # The same jitter on a run that never got anywhere is oscillation.
    assert is_unstable([0.013, 0.012, 0.013, 0.012, 0.013, 0.012, 0.013])


def test_is_unstable_oscillation_with_flat_transitions():
    # Equal consecutive losses are no jump.
    assert not is_unstable([1.0, 1.0, 1.0, 1.0])
    assert is_unstable([1.0, 1.0, 1.1, 1.1])  # 1 jump of 3 transitions


# ---------------------------------------------------------------- is_still_falling


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], False),
        ([1.0], False),
        ([2.0, 1.0], True),  # up to 3 epochs: one fall is enough
        ([1.0, 2.0], False),
        ([1.0, 1.0], False),  # equal is not falling
        ([3.0, 2.0, 1.0], True),
        ([5.0, 4.0, 3.0, 2.0], True),
        ([5.0, 4.0, 3.0, 3.0], False),
        ([5.0, 5.0, 3.0, 2.0], False),  # the first of the last 3 transitions is flat
        ([5.0, 6.0, 3.0, 2.0], False),
        ([1.0, 9.0, 3.0, 2.0, 1.5], True),  # an older rise does not matter
        ([9.0, 8.0, 7.0, 6.0, 6.0], False),
        ([3.0, 2.0, math.nan, 1.0], False),
    ],
)
def test_is_still_falling(history, expected):
    assert is_still_falling(history) is expected


def test_is_still_falling_looks_at_falling_epochs_transitions():
    falling = [float(10 - k) for k in range(FALLING_EPOCHS + 1)]
    assert is_still_falling([1.0, *falling])  # rose before the window
    assert not is_still_falling([*falling[:-1], falling[-2]])  # flat in the last epoch
    assert is_still_falling([100.0, 1.0, 2.0, *falling][-(FALLING_EPOCHS + 1) :])


# ---------------------------------------------------------------- verdict

FALLING = [8.0, 6.0, 5.0, 4.5, 4.2]  # falls every epoch, no jumps, no rise


@pytest.mark.parametrize(
    ("history", "final"),
    [
        (FALLING, None),
        (FALLING, math.nan),
        (FALLING, math.inf),
        ([*FALLING, math.nan], math.nan),
    ],
)
def test_verdict_diverged_non_finite_final(history, final):
    assert verdict(history, diverged=False, final=final, best=1.0) == "diverged"


def test_verdict_diverged_flag_wins_over_everything():
    assert verdict(FALLING, diverged=True, final=FALLING[-1], best=FALLING[-1]) == "diverged"
    assert verdict(FALLING, diverged=True, final=1.0, best=1.0) == "diverged"
    assert verdict([], diverged=True, final=None, best=None) == "diverged"


def test_verdict_unstable_rose():
    history = [5.0, 4.0, 3.0, 2.0, 1.0, 1.2, 1.6]
    assert verdict(history, False, final=1.6, best=1.0) == "unstable"
    # The rise is checked before rank: even the best trial is unstable.
    assert verdict(history, False, final=1.6, best=1.6) == "unstable"


def test_verdict_unstable_oscillating():
    history = with_jumps(6, 2, jump=1.1)
    assert verdict(history, False, final=history[-1], best=history[-1]) == "unstable"
    assert verdict(history, False, final=history[-1], best=history[-1] / 3) == "unstable"


def test_verdict_rose_boundary():
    base = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0]
    at = [*base, ROSE_FACTOR * 2.0]
    over = [*base, above(ROSE_FACTOR * 2.0)]
    assert verdict(at, False, final=at[-1], best=at[-1]) == "best"
    assert verdict(over, False, final=over[-1], best=over[-1]) == "unstable"


@pytest.mark.parametrize("final", [4.2, 4.0])
def test_verdict_best(final):
    history = [*FALLING[:-1], final]
    assert verdict(history, False, final=final, best=4.2) == "best"  # rank 1 (or tie/better)


@pytest.mark.parametrize(
    "ratio",
    [above(1.0), 1.5, below(FAR_FACTOR), FAR_FACTOR],
    ids=["just-worse", "1.5x", "just-under-2x", "exactly-2x"],
)
@pytest.mark.parametrize("history", [FALLING, [8.0, 6.0, 5.0, 4.2, 4.2]], ids=["falling", "flat"])
def test_verdict_good_within_far_factor(ratio, history):
    best = history[-1] / ratio
    assert history[-1] <= FAR_FACTOR * best
    assert verdict(history, False, final=history[-1], best=best) == "good"


def test_verdict_good_when_there_is_no_best():
    assert verdict(FALLING, False, final=FALLING[-1], best=None) == "good"


def test_verdict_slow_falling_far_from_best():
    assert verdict(FALLING, False, final=4.2, best=1.0) == "slow"


def test_verdict_slow_and_poor_far_factor_boundary():
    final = FALLING[-1]
    best_at = final / FAR_FACTOR  # final is exactly 2x the best: still good
    assert FAR_FACTOR * best_at == final
    assert verdict(FALLING, False, final=final, best=best_at) == "good"
    assert verdict(FALLING, False, final=final, best=below(best_at)) == "slow"
    flat = [*FALLING[:-1], FALLING[-2]]
    assert verdict(flat, False, final=flat[-1], best=flat[-1] / FAR_FACTOR) == "good"
    assert verdict(flat, False, final=flat[-1], best=below(flat[-1] / FAR_FACTOR)) == "poor"


@pytest.mark.parametrize(
    "history",
    [
        [8.0, 6.0, 5.0, 5.0, 5.0],  # flat for two epochs
        [8.0, 6.0, 5.0, 4.5, 4.5],  # flat in the last epoch only
        [8.0, 6.0, 6.0, 5.0, 4.5],  # fell in only the last 2 of 3
        [8.0, 6.0, 5.0, 4.5, 4.6],  # crept up (2%, no jump)
        [9.0, 9.0],  # two epochs, flat
    ],
)
def test_verdict_poor_stopped_falling_far_from_best(history):
    assert not is_unstable(history)
    assert not is_still_falling(history)
    assert verdict(history, False, final=history[-1], best=1.0) == "poor"


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([9.0, 8.0], "slow"),  # two epochs, one fall: still falling
        ([9.0, 8.0, 7.0], "slow"),
        ([20.0, 9.0, 8.0, 7.0, 6.0, 5.0], "slow"),
        ([20.0, 9.0, 9.0, 8.0, 7.0, 6.0], "slow"),  # the flat epoch is outside the last 3
        ([20.0, 9.0, 8.0, 7.0, 7.0, 6.0], "poor"),  # ...and inside
    ],
)
def test_verdict_slow_vs_poor_window(history, expected):
    assert verdict(history, False, final=history[-1], best=1.0) == expected


def test_every_verdict_is_listed():
    cases = [
        verdict(FALLING, True, FALLING[-1], 1.0),
        verdict([1.0, 2.0], False, 2.0, 1.0),
        verdict(FALLING, False, FALLING[-1], FALLING[-1]),
        verdict(FALLING, False, FALLING[-1], 3.0),
        verdict(FALLING, False, FALLING[-1], 1.0),
        verdict([5.0, 5.0], False, 5.0, 1.0),
    ]
    assert sorted(cases) == sorted(VERDICTS)


# ------------------------------------------------------------------ either direction, any sign


def test_an_accuracy_reads_by_its_error():
    # Higher is better, never above 1: "vs best" is the ratio of the errors (1 - acc).
    m = Measure.of("max", [0.9, 0.95, 0.5])
    assert (m.bound, m.best) == (1.0, 0.95)
    assert m.better(0.95, 0.9) and m.key(0.95) < m.key(0.9)
    assert m.versus(0.9, 0.95) == (pytest.approx(2.0), "x") and m.text(m.versus(0.9, 0.95)) == "2x"
    assert m.verdict([0.5, 0.8, 0.95], False, 0.95, 0.95) == "best"
    assert m.verdict([0.3, 0.4, 0.5], False, 0.5, 0.95) == "slow"  # 10x the error, still rising
    assert m.verdict([0.9, 0.95, 0.6], False, 0.6, 0.95) == "unstable"  # fell back


def test_a_negative_log_likelihood_reads_by_difference():
    # No bound: the difference in the metric's own units, and the lowest NLL is best.
    m = Measure.of("min", [-3.2, -2.9, 1.0])
    assert m.bound is None and m.best == -3.2
    assert m.text(m.versus(-2.9, -3.2)) == "+0.3"
    assert m.verdict([-1.0, -2.0, -3.2], False, -3.2, -3.2) == "best"
    assert m.verdict([-1.0, -2.8, -2.9], False, -2.9, -3.2) == "good"  # 0.3 of a spread of 4.2
    assert m.verdict([1.5, 1.2, 1.0], False, 1.0, -3.2) == "slow"  # worse by most of the spread


def test_a_best_on_its_bound_reads_by_difference():
    # Lightning's DemoModel reaches a loss of exactly 0: a ratio to 0 means nothing.
    m = Measure.of("min", [0.0, 0.002, 0.5])
    assert m.text(m.versus(0.002, 0.0)) == "+0.002" and m.text(m.versus(0.0, 0.0)) == "+0"
    assert (
        Measure.of("max", [1.0, 0.9]).text(Measure.of("max", [1.0, 0.9]).versus(0.9, 1.0)) == "+0.1"
    )
