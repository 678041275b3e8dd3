"""Errors that are the user's to fix: reported as one readable line, exit status 2."""


class UserError(ValueError):
  """Bad input: a missing dataset folder, a corrupt image, a bad config value."""


class NonFiniteError(UserError):
  """Training produced a non-finite loss; the message names the step and the term."""


class DiskFull(UserError):
  """A write found no space left on its device; the message names the path, the space free
  there (and needed, where known) and the last checkpoint, which a failed write never
  touches."""


class WorkdirLocked(UserError):
  """Another training run holds the workdir; the message names its host, pid and start."""


class Interrupted(Exception):
  """Ctrl-C (SIGINT) or SIGTERM: the message says where the job stopped and how to carry on.

  Attributes:
    code: the exit status, 128 + the signal: 130 for SIGINT, 143 for SIGTERM.
  """

  def __init__(self, message: str, code: int = 130):
    super().__init__(message)
    self.code = code
