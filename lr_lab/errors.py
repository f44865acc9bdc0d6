"""The lab's errors, each one line for the user, and the exit code each one gives.

Exit codes: 0 done; 1 the run failed (a bug, a broken environment, a full disk); 2 bad input (a
key, a file, a user class, an edited or damaged run folder: nothing, or nothing new, is written);
128 + N stopped by signal N (resume with ``--resume RUN_DIR``). Imports nothing heavy.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class LabError(Exception):
    """An error whose message is already one line for the user."""

    exit_code = EXIT_BAD_INPUT


class UsageError(LabError):
    """Bad input; each line of the message is one problem."""


class DataError(LabError, ValueError):
    """The data cannot be made or read; the message names the file or key."""


class InitStateError(LabError, ValueError):
    """The initial checkpoint is missing, unreadable or does not fit the model."""


class ResultsError(LabError):
    """``results.json`` cannot be used; the message names the field."""


class RunDirError(LabError):
    """A run folder cannot be used; the message names the folder and the cause."""


class ProviderError(LabError):
    """A user's class cannot be used; the message names the key."""


class ContractError(LabError):
    """A user's module or data module broke the lab's contract at some step."""


class WorkerDied(LabError):
    """A worker process died mid-trial (killed, out of memory); finished trials are kept."""

    exit_code = EXIT_FAILED


class TrialError(LabError):
    """An exception raised while a trial (or the finder) ran, with the trial it came from.

    A :class:`LabError` (one line), whose exit code is its cause's: 2 for bad input found at some
    step, else 1.
    """

    def __init__(self, where: str, cause: BaseException):
        super().__init__(f"{where}: {one_line(cause)}")
        self.where, self.cause = where, cause
        self.exit_code = exit_code(cause)

    def __reduce__(self) -> tuple:
        # Across processes (a study's worker to the study). Exception pickles only ``args``, and
        # a user's exception class may not unpickle at all: then its one line travels instead.
        import pickle

        try:
            pickle.loads(pickle.dumps(self.cause))
            cause = self.cause
        except Exception:  # noqa: BLE001 - any failure to round-trip
            cause = RemoteError(one_line(self.cause), self.exit_code)
        return type(self), (self.where, cause)


class RemoteError(LabError):
    """An exception from another process that could not travel: its one line and exit code."""

    def __init__(self, line: str, code: int = EXIT_FAILED):
        super().__init__(line)
        self.exit_code = code

    def __reduce__(self) -> tuple:
        return type(self), (str(self), self.exit_code)


def one_line(err: BaseException) -> str:
    """The error as one line: the lab's own message, else ``Type: first line``."""
    if isinstance(err, TrialError):
        return str(err)
    if isinstance(err, LabError):
        return " ".join(str(err).split("\n")[0].split())
    if isinstance(err, OSError) and err.strerror:
        where = err.filename or ""
        return f"{where}: {err.strerror}" if where else err.strerror
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def exit_code(err: BaseException) -> int:
    """The exit code for an error that stopped the run."""
    cause = err.cause if isinstance(err, TrialError) else err
    return getattr(cause, "exit_code", EXIT_FAILED) if isinstance(cause, LabError) else EXIT_FAILED
