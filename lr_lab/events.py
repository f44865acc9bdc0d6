"""A trial's scalars, appended to its TensorBoard event file once per epoch, synchronously.

TensorBoard's own record writer and protos, without ``SummaryWriter``'s queue and thread: a trial
writes hundreds of points at each epoch's end, and ``SummaryWriter`` (queue of 10 by default)
made every point wait on its writing thread; with one call per epoch the file is also complete,
flushed, after every epoch.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter


class ScalarLog:
    """One TensorBoard run's scalars, in one event file of the run's folder.

    Args:
        run_dir: The run's folder (created on the first write).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._pending: list[bytes] = []
        self._file = None

    def add(self, tag: str, value: float, step: int) -> None:
        """Queue one point (written at the next :meth:`flush`)."""
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        self._pending.append(
            Event(wall_time=time.time(), step=step, summary=summary).SerializeToString()
        )

    def flush(self) -> None:
        """Append the queued points to the event file and flush it."""
        if not self._pending:
            return
        if self._file is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.lr_lab"
            self._file = open(self.run_dir / name, "wb")  # noqa: SIM115 - closed in close()
            self._writer = RecordWriter(self._file)
            header = Event(wall_time=time.time(), file_version="brain.Event:2")
            self._writer.write(header.SerializeToString())
        for record in self._pending:
            self._writer.write(record)
        self._file.flush()
        self._pending = []

    def close(self) -> None:
        """Write what is queued and close the file."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
