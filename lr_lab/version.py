"""lr_lab's version: the one ``pip``, ``results.json`` and ``study.json`` record."""

__version__ = "0.3.0"
