"""TensorBoard event files, written synchronously in the calling thread.

TensorBoard's own record writer and protos, without ``SummaryWriter``'s queue and thread: a trial
writes hundreds of points at each epoch's end, and ``SummaryWriter`` (queue of 10 by default)
made every point wait on its writing thread; with one call per epoch the file is also complete,
flushed, after every epoch. And a write that fails (a full disk) fails here, once, naming the
file, where ``SummaryWriter``'s thread would print its own traceback before the writer re-raised
the error without a file name.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import IO

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event, SourceMetadata
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter
from torch.utils.tensorboard.summary import image, scalar, text

# The first record of every event file, as SummaryWriter writes it.
FILE_VERSION = "brain.Event:2"


class ScalarLog:
    """One TensorBoard run's scalars, in one event file of the run's folder.

    Args:
        run_dir: The run's folder (created on the first write).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._pending: list[Event] = []
        self._file: IO[bytes] | None = None
        self._events: EventFile | None = None
        self._path = self.run_dir

    def add(self, tag: str, value: float, step: int) -> None:
        """Queue one point (written at the next :meth:`flush`)."""
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        self._pending.append(Event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        """Append the queued points to the event file and flush it.

        Raises:
            OSError: The file cannot be written (a full disk); the error names it.
        """
        if not self._pending:
            return
        try:
            events = self._events or self._open()
            for event in self._pending:
                events.write(event)
            self._file.flush()
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(self._path)) from err
        finally:
            self._pending = []  # written or not, never written twice

    def _open(self) -> EventFile:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self._path = self.run_dir / f"{name}.lr_lab"
        self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        self._events = EventFile(self._file)
        return self._events

    def close(self) -> None:
        """Write what is queued and close the file."""
        try:
            self.flush()
        finally:
            if self._file is not None:
                file, self._file = self._file, None
                try:
                    file.close()
                except OSError as err:  # what a failed flush left in the buffer, again
                    raise OSError(err.errno, err.strerror, str(self._path)) from err


class EventFile:
    """Records written one by one into an open event file (a trial's curves, the report's).

    Args:
        fh: The file, open for binary writing.
    """

    def __init__(self, fh: IO[bytes]):
        self._writer = RecordWriter(fh)
        # SummaryWriter's header, so the file reads as one of its files.
        source = SourceMetadata(writer="tensorboard.summary.writer.event_file_writer")
        self.write(Event(wall_time=time.time(), file_version=FILE_VERSION, source_metadata=source))

    def write(self, event: Event) -> None:
        """Write one event record."""
        self._writer.write(event.SerializeToString())

    def add_summary(self, summary: Summary, step: int | None = None) -> None:
        """Write one summary (at ``step``, or none, as ``SummaryWriter``)."""
        event = Event(wall_time=time.time(), summary=summary)
        if step is not None:
            event.step = int(step)
        self.write(event)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """Write one point of a scalar curve."""
        self.add_summary(scalar(tag, value), step)

    def add_text(self, tag: str, value: str) -> None:
        """Write a Markdown text (the Text dashboard)."""
        self.add_summary(text(tag, value))

    def add_image(self, tag: str, pixels: np.ndarray, dataformats: str = "HWC") -> None:
        """Write an image (the Images dashboard)."""
        self.add_summary(image(tag, pixels, dataformats=dataformats))
