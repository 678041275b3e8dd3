"""Tests of asic_jax.errors: the hierarchy the command line's handler relies on (every error
the user is to fix is a `UserError`, one line and exit 2; an interruption is not one)."""

import pytest

from asic_jax import errors


@pytest.mark.parametrize('kind', [errors.NonFiniteError, errors.DiskFull, errors.WorkdirLocked])
def test_the_users_errors_are_user_errors(kind):
  with pytest.raises(errors.UserError, match='the message'):
    raise kind('the message')
  assert issubclass(kind, ValueError)  # a bad value, as callers outside the package expect


def test_an_interruption_is_not_a_user_error_and_carries_its_exit_status():
  assert not issubclass(errors.Interrupted, errors.UserError)
  assert errors.Interrupted('stopped').code == 130  # 128 + SIGINT
  terminated = errors.Interrupted('stopped', code=143)  # 128 + SIGTERM
  assert (str(terminated), terminated.code) == ('stopped', 143)
