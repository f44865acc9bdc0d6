"""Real-data examples: user-style LightningModules and LightningDataModules the lab can run.

Each example is named by ``class_path`` in a YAML config; see ``configs/digits.yaml``.
"""
