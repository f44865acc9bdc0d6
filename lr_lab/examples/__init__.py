"""Real-data examples: user-style LightningModules and LightningDataModules the lab can run.

Each example is named by ``class_path`` in a YAML config; see ``configs/digits.yaml``.
"""

# module -> (the module it imports at run time, the extra that installs it): checked before a run
# folder exists (the study's problems), without importing torch or the example.
NEEDS = {
    "lr_lab.examples.digits": ("sklearn", "examples"),
    "lr_lab.examples.tabular": ("sklearn", "examples"),
    "lr_lab.examples.vision": ("sklearn", "examples"),
    "lr_lab.examples.forecasting": ("pytorch_forecasting", "forecasting"),
}


def missing(class_path: str) -> str | None:
    """What an example named by ``class_path`` lacks here, in one line, or None."""
    import importlib.util

    example = class_path.rsplit(".", 1)[0]
    module, extra = NEEDS.get(example, (None, None))
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"{example} needs {module}: pip install -e '.[{extra}]'"
