"""The printed answer: every branch says what happened, in words that match the numbers."""

from __future__ import annotations

from lr_lab.analysis.comparison import compare
from lr_lab.analysis.records import FinderResult, TrialResult
from lr_lab.analysis.results import RunResults
from lr_lab.report.table import answer, format_table, lr_text


def trial(name, lr, losses, role="fixed", seed=0, diverged=False, rules=()):
    return TrialResult(
        name=name, role=role, lr=lr, seed=seed, rules=list(rules), train_loss=losses,
        final_train_loss=None if diverged else losses[-1], diverged=diverged,
    )  # fmt: skip


def run(trials, finders, rules, seeds=(0,)):
    results = RunResults(seeds=list(seeds), trials=trials, finders=finders)
    results.comparison = compare(results, rules)
    return results


def test_no_suggestion_says_why():
    results = run(
        [trial("lr=0.1", 0.1, [1.0, 0.5])],
        [
            FinderResult(
                seed=0, rules={"lightning": None}, rule_notes={"lightning": "too few points"}
            )
        ],
        ["lightning"],
    )
    text = answer(results)
    assert "Lightning's LR finder gave no suggestion (seed 0: too few points)." in text
    assert "No suggestion from:" in format_table(results)


def test_unverified_suggestion():
    results = run(
        [trial("lr=0.1", 0.1, [1.0, 0.5])],
        [FinderResult(seed=0, rules={"lightning": 0.02})],
        ["lightning"],
    )
    assert "suggested 0.02; it was not trained (finder.verify is off)." in answer(results)


def test_diverged_suggestion_on_some_seeds():
    trials = [
        *(trial("lr=0.1", 0.1, [1.0, 0.5], seed=s) for s in (0, 1)),
        trial(
            "check", 3.0, [1.0], role="finder_check", seed=0, diverged=True, rules=("lightning",)
        ),
        trial("check", 2.0, [1.0, 0.9], role="finder_check", seed=1, rules=("lightning",)),
    ]
    finders = [
        FinderResult(seed=0, rules={"lightning": 3.0}),
        FinderResult(seed=1, rules={"lightning": 2.0}),
    ]
    text = answer(run(trials, finders, ["lightning"], seeds=(0, 1)))
    assert (
        "suggested 2 (per seed 2..3); trained from the same initial weights it diverged on 1 of 2 seeds."
        in text
    )


def test_a_zero_loss_is_an_exact_fit_not_a_crash():
    results = run(
        [trial("lr=0.1", 0.1, [1.0, 0.0]), trial("lr=0.01", 0.01, [1.0, 0.5])],
        [FinderResult(seed=0, rules={"valley": 0.1})],
        ["valley"],
    )
    rows = {r.label: r for r in results.comparison.rows}
    # A ratio to a best of 0 means nothing: the difference, in the loss's own units.
    assert rows["0.1"].vs_best_fixed == "+0" and rows["0.01"].vs_best_fixed == "+0.5"
    assert rows["0.01"].ratio_to_best_fixed is None
    assert "Best fixed LR: 0.1 (train loss 0)." in answer(results)
    assert "+0.5" in format_table(results)


def test_one_precision_for_a_median_and_its_range():
    # Three seeds suggest 0.1263, 0.126 and 0.19: the lower median is 0.1263. Printed with
    # one precision the median can never fall outside its own printed range.
    text = lr_text(0.1263, 0.126, 0.19)
    median, low, high = (
        float(v) for v in text.replace("(", "").replace(")", "").replace("..", " ").split()
    )
    assert text == "0.126 (0.126..0.19)" and low <= median <= high
    assert lr_text(0.01, 0.01, 0.01) == "0.01"  # no range when the seeds agree


def test_a_long_table_is_split_into_pages_that_fit_tensorboard():
    from lr_lab.report.table import markdown_tables

    trials = [trial(f"{i:03d}_lr={i}", 10.0**-i, [1.0, 0.1 * i]) for i in range(1, 15)]
    pages = markdown_tables(run(trials, [], []))
    assert list(pages) == ["rows 1-10", "rows 11-14"]
    rows = [[line for line in p.splitlines()[2:] if line.startswith("|")] for p in pages.values()]
    assert [len(r) for r in rows] == [10, 4]  # rows under each header
    assert all("Ranked by the final" in p for p in pages.values())
