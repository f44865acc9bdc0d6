"""lr_lab: a PyTorch Lightning lab for the learning rate.

Run ``python scripts/run.py`` (or ``lr-lab``) to train a model at several fixed learning rates from
one checkpointed initial state, run Lightning's LR finder from the same state, and see whether the
finder's suggestion holds up; or, from Python, ``lr_lab.run(config)`` (``lr_lab.resume(run_dir)``
finishes a stopped one).
"""

from lr_lab.analysis.results import RunResults
from lr_lab.errors import LabError, UsageError
from lr_lab.version import __version__

__all__ = ["LabError", "RunResults", "UsageError", "__version__", "resume", "run"]


def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """Run one experiment; see :func:`lr_lab.api.run` (imported on first use: it is heavy)."""
    from lr_lab.api import run as _run

    return _run(*args, **kwargs)


def resume(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """Finish a stopped run folder; see :func:`lr_lab.api.resume` (imported on first use)."""
    from lr_lab.api import resume as _resume

    return _resume(*args, **kwargs)
