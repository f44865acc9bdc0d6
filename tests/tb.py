"""Read TensorBoard event files back, as TensorBoard itself would."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def plugin_tags(run: Path, plugin: str) -> set[str]:
    tags = set()
    for path in run.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == plugin:
                    tags.add(value.tag)
    return tags


def _hparams_record(run: Path, tag: str):  # noqa: ANN202 - an HParamsPluginData, or None
    """The first HParams plugin record with ``tag`` in a run's event files."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    for path in run.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == tag:
                    content = value.metadata.plugin_data.content
                    return plugin_data_pb2.HParamsPluginData.FromString(content)
    return None


def hparams_of(run: Path) -> dict[str, object]:
    """The hyperparameters of a run's HParams session (as the HParams dashboard reads them)."""
    data = _hparams_record(run, "_hparams_/session_start_info")
    info = data.session_start_info.hparams if data else {}
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.items()}


def declared_metrics(run: Path) -> list[str]:
    """The metric columns a run's HParams experiment declares (TensorBoard uses one run's)."""
    data = _hparams_record(run, "_hparams_/experiment")
    return [m.name.tag for m in data.experiment.metric_infos] if data else []
