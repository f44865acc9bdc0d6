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


def hparams_of(run: Path) -> dict[str, object]:
    """The hyperparameters of a run's HParams session (as the HParams dashboard reads them)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    for path in run.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content
                    )
                    info = data.session_start_info.hparams
                    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.items()}
    return {}


def declared_metrics(run: Path) -> list[str]:
    """The metric columns a run's HParams experiment declares (TensorBoard uses one run's)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    for path in run.glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "_hparams_/experiment":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content
                    )
                    return [m.name.tag for m in data.experiment.metric_infos]
    return []
