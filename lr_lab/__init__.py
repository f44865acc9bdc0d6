"""lr_lab: a PyTorch Lightning lab for the learning rate.

Run ``python scripts/run.py`` (or ``lr-lab``) to train a small regression net at several fixed
learning rates from one checkpointed initial state, run Lightning's LR finder from the same state,
and see whether the finder's suggestion holds up.
"""

__version__ = "0.1.0"
