"""The console of the runs: Dagster's own, except that a run failing with one of our one-line errors says that
line, without Dagster's frames, and last.

A step ends on an error the user fixes (a setting, the credentials, a Parquet folder, the warehouse out of reach) by
raising a ``Failure`` whose description is that line (pipeline/defs/steps.py). Dagster's console logger printed
such a failure with its stack of framework frames, twice (the step's failure, then the run's), and `dagster asset
materialize` and `dg launch` then end with their own "Error: Materialization failed.". Here the failure events
print their line without the frames (the run's event log keeps the whole error, and the chain of causes is
logged at DEBUG there, not on the console), and a command that ran the run in its own process prints the line
again when it exits, after everything else: the last thing the user reads is what to fix.

Dagster uses a job's own console logger only when the run's config names it, which those commands never do, so a
filter is put on the default console loggers instead: the run's by the executor (Dagster's in-process executor,
wrapped: ``quiet_failures_in_process_executor``), the step's by the step that fails (``quiet_failure_frames``).
"""

import atexit
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from dagster import DagsterEventType, Executor, executor, in_process_executor

# Opens the DEBUG message carrying an error's chain of causes: kept in the run's event log, never printed here.
ERROR_CHAIN_PREFIX = "the error chain of: "
_FAILURE_EVENTS = (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE)
# Commands (`dagster asset materialize`, `dagster job execute`, `dg launch`) that execute the run in their own
# process, then exit on Click's "Error: ..." line.
_RUNNING_COMMANDS = {"materialize", "execute", "launch"}


def _one_line_failure(event: object) -> str | None:
    """The description of a ``Failure`` raised without a cause (our one-line errors), from a failure event."""
    if getattr(event, "event_type", None) not in _FAILURE_EVENTS:
        return None
    error = getattr(event.event_specific_data, "error", None)
    if error is None or error.cls_name != "Failure" or error.cause is not None or error.context is not None:
        return None
    lines = error.message.strip().splitlines()
    # "dagster._core.definitions.events.Failure: <description>"
    return lines[0].split(": ", 1)[-1] if lines else None


class _OneLineFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        if record.levelno <= logging.DEBUG and str(meta.get("orig_message", "")).startswith(ERROR_CHAIN_PREFIX):
            return False
        line = _one_line_failure(meta.get("dagster_event"))
        if line is not None:
            head = str(record.msg).split("\n\n", 1)[0].rstrip(".")
            record.msg, record.args = f"{head}: {line}", ()
            _say_last(line)
        return True


# The failure lines of this process's runs; the first is printed at exit (the run's failure repeats its step's).
_said: list[str] = []


def _say_last(line: str) -> None:
    """Print ``line`` when the process exits, if it is a command that ran the run itself (not a run worker, a test
    or the UI, whose logs carry the failure already)."""
    context = click.get_current_context(silent=True)
    if context is None or context.info_name not in _RUNNING_COMMANDS:
        return
    if not _said:
        atexit.register(lambda: print(_said[0], file=sys.stderr, flush=True))
    _said.append(line)


def quiet_failure_frames(log: logging.Logger) -> None:
    """From now on, the console loggers of ``log`` (a step's ``context.log``, a run's log manager) print our
    one-line failures without Dagster's frames, and the last line of a command that runs the run itself is the
    failure's line. The loggers are reached through the log manager's private attributes, read defensively:
    without them the console prints Dagster's frames as before."""
    for console in getattr(getattr(log, "_dagster_handler", None), "_loggers", ()):
        if isinstance(console, logging.Logger) and not any(isinstance(f, _OneLineFailures) for f in console.filters):
            console.addFilter(_OneLineFailures())


class _QuietFailuresExecutor(Executor):
    """Dagster's in-process executor, the console of whose run (where the run's failure is printed) says our
    one-line failures without frames."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        quiet_failure_frames(plan_context.log)
        yield from self._inner.execute(plan_context, execution_plan)


@executor(name="in_process", config_schema=in_process_executor.config_schema)
def quiet_failures_in_process_executor(init_context):
    """All steps in one process, as ``in_process_executor``; our one-line failures are printed without frames."""
    return _QuietFailuresExecutor(in_process_executor.executor_creation_fn(init_context))


# The package's own loggers (pipeline.api's retries, pipeline.warehouse's views left busy...): Python loggers, which
# Dagster keeps only when the instance's python_logs setting names them.
PIPELINE_LOGGER = "pipeline"


class _ToStepLog(logging.Handler):
    """Hands the package's log records to a step's ``context.log`` (Dagster's log manager takes records from the
    step's worker threads too: the fetch's retries are logged there)."""

    def __init__(self, step_log: logging.Logger):
        super().__init__(logging.INFO)
        self._step_log = step_log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._step_log.log(record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - a log line never fails the step
            self.handleError(record)


@contextmanager
def pipeline_logs_in_step_log(step_log: logging.Logger) -> Iterator[None]:
    """For the block, the package's log records of INFO and above go to the step's log (``context.log``): the run's
    event log, the UI and the console show a retry or a view left busy where the run's other lines are. Without
    handlers of the user's own (Python's last resort only), they are not printed a second time, bare, on stderr."""
    logger = logging.getLogger(PIPELINE_LOGGER)
    handler, level, propagate = _ToStepLog(step_log), logger.level, logger.propagate
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
