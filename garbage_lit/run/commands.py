"""What every command (train, evaluate, predict, export, audit) does first, and how a user's error ends it.

* :func:`~garbage_lit.run.launch.start_command`: the CPU threads (``threads=``), and Python warnings into the
  command's log file (``train.log``, ``predict.log``, ...) as well as the console.
* :func:`one_line_errors`: an error the user fixes (:class:`~garbage_lit.errors.UserError`: a config value, the
  data, a checkpoint) ends the command with its message alone and exit code 1; the traceback is printed only with
  ``HYDRA_FULL_ERROR=1``.
* :func:`cli`: the command line: Hydra's app, plus the keys that exist (or a renamed key's new name) when Hydra refused
  a key the config does not have.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hydra.errors import CompactHydraException, InstantiationException

from garbage_lit.config import unknown_key_hint
from garbage_lit.errors import UserError


class ErrorMessage(CompactHydraException):
    """An error Hydra shows as its message alone (the traceback is in failure.log, and with HYDRA_FULL_ERROR=1)."""


def user_error(exc: BaseException) -> UserError | None:
    """The user's error behind ``exc``, if it is one (Hydra wraps what a ``_target_`` raised while being built)."""
    cause = exc.__cause__ if isinstance(exc, InstantiationException) else exc
    return cause if isinstance(cause, UserError) else None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A user's error, raised in the block, becomes its message alone (:class:`ErrorMessage`)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - anything else keeps its traceback
        error = user_error(exc)
        if error is None:
            raise
        raise ErrorMessage(str(error)) from exc


def cli(app: Callable[[], object], config_name: str) -> None:
    """Run a Hydra ``app``; when Hydra refused the command line, add the keys that exist and the closest one."""
    try:
        app()
    except SystemExit as exc:
        if exc.code == 1:  # Hydra refused the command line (an interrupted run exits 130 or 143)
            hint = unknown_key_hint(sys.argv[1:], config_name)
            if hint:
                print(hint, file=sys.stderr)
        raise
