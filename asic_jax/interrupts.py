"""Ctrl-C (SIGINT) and SIGTERM (what SLURM and preemptible VMs send) on the command line.

`install()` makes both stop the process cleanly, with one line on stderr:

- In the training loop (between `defer` and `undefer`), the first signal asks the loop to
  stop after the step it is running; the loop saves a checkpoint at that step and ends the
  run with `errors.Interrupted`, whose message says where it stopped and that rerunning
  resumes.
- Anywhere else (imports, extraction, restoring, evaluation, figures, the report), and on a
  second signal, the process ends at once (`exit_at_once`): the temporary files of writes in
  progress are removed, the workdir lock is released, the line is printed and the process
  leaves through `os._exit`. No exception travels through JAX or library code, where a
  callback could swallow it (and the job finish as if nothing happened) or the interpreter's
  exit crash with XLA's threads still running. Every file a job writes is renamed into place
  whole, so there is nothing left to finish.

The exit status is 128 + the signal: 130 for SIGINT, 143 for SIGTERM. Without `install()`
(the Python API, tests) Python's defaults stay: Ctrl-C raises `KeyboardInterrupt`.
"""

import os
import signal
import sys

WORDS = {signal.SIGINT: 'interrupted (Ctrl-C)', signal.SIGTERM: 'terminated (SIGTERM)'}

_received: int | None = None  # the first signal since `install`
_acknowledged = False  # whether the training loop has acted on `_received`
_deferring: str | None = None  # between `defer` and `undefer`: what a second signal's exit says
_message = 'stopped'  # what an immediate exit says after its word


def install(message: str) -> None:
  """Handles SIGINT and SIGTERM as the module docstring says; `message` is what an
  immediate stop outside the training loop prints after 'interrupted (Ctrl-C): '. Only from
  the main thread (Python's rule for signal handlers)."""
  global _message
  _message = message
  for signum in WORDS:
    signal.signal(signum, _handle)


def _handle(signum: int, frame) -> None:
  del frame
  global _received
  first = _received is None
  _received = signum
  if _deferring is not None and first:
    return  # the training loop stops after its current step
  exit_at_once(f'{WORDS[signum]}: {_deferring or _message}', code(signum))


def code(signum: int) -> int:
  """The exit status of a process stopped by `signum`: 128 + its number."""
  return 128 + signum


def word(signum: int) -> str:
  """'interrupted (Ctrl-C)' or 'terminated (SIGTERM)'."""
  return WORDS[signum]


def requested() -> int | None:
  """The signal that asked the process to stop (while deferring), or None."""
  return _received


def defer(message: str) -> None:
  """From now until `undefer`, a first signal only sets `requested()` (the training loop
  checks it after every step, acts on it and calls `acknowledge`); a second exits at once
  saying `message`."""
  global _deferring
  _deferring = message


def acknowledge() -> None:
  """The loop has acted on the signal `requested()` names (saved, and is ending the run)."""
  global _acknowledged
  _acknowledged = True


def undefer() -> None:
  """Ends `defer`. A signal that came after the loop's last check, and that it therefore
  never acted on, exits at once now."""
  global _deferring
  _deferring = None
  if _received is not None and not _acknowledged:
    exit_at_once(f'{WORDS[_received]}: {_message}', code(_received))


def exit_at_once(line: str, status: int) -> None:
  """Removes temporary files of writes in progress, releases the workdir lock, prints `line`
  on stderr and ends the process with `status`, skipping the interpreter's teardown."""
  # pylint: disable=import-outside-toplevel
  from asic_jax import lock, safe_io
  safe_io.remove_pending()
  lock.release_all()
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError, RuntimeError):
      pass  # a closed or re-entered stream: the line below still goes out
  os.write(2, (line + '\n').encode())
  os._exit(status)
