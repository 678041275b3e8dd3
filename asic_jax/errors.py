"""Errors that are the user's to fix: reported as one readable line, exit status 2."""


class UserError(ValueError):
  """Bad input: a missing dataset folder, a corrupt image, a bad config value."""


class NonFiniteError(UserError):
  """Training produced a non-finite loss; the message names the step and the term."""


class Interrupted(Exception):
  """Ctrl-C (SIGINT): the message says where the job stopped and how to carry on; exit 130."""
