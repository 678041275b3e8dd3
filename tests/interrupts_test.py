"""Ctrl-C and SIGTERM on the command line: outside the training loop one line and an exit at
once (writes in progress and the lock cleaned up); inside it a request the loop acts on, and
a second signal an exit at once. Run in small processes of their own (signals, exits)."""

import signal
import subprocess
import sys

import pytest

from conftest import ROOT

# A process that installs the handlers, takes the workdir lock, starts an atomic write and
# waits (`body`: in the training loop's part, `defer` ... `undefer`, or not).
_SCRIPT = '''
import pathlib, sys, time
sys.path.insert(0, {root!r})
from asic_jax import interrupts, lock, safe_io
interrupts.install('eval stopped before it finished')
workdir = pathlib.Path({workdir!r})
lock.acquire(workdir)
def write(f):
  f.write(b'half')
  {body}
safe_io.write_atomic(workdir / 'results.json', write)
'''
_WAIT = 'print("ready", flush=True); time.sleep(60)'
_LOOP = '''interrupts.defer('stopped at once by a second signal')
  print("ready", flush=True)
  while interrupts.requested() is None:
    time.sleep(0.01)
  print("requested", interrupts.requested(), flush=True)
  time.sleep(60)'''
# A loop that ends (`undefer`) without acting on the signal that came.
_UNACTED = '''interrupts.defer('stopped at once by a second signal')
  print("ready", flush=True)
  while interrupts.requested() is None:
    time.sleep(0.01)
  interrupts.undefer()
  time.sleep(60)'''


def _start(tmp_path, body: str) -> subprocess.Popen:
  script = _SCRIPT.format(root=str(ROOT), workdir=str(tmp_path), body=body)
  process = subprocess.Popen([sys.executable, '-c', script],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  assert process.stdout.readline().strip() == 'ready'
  return process


@pytest.mark.parametrize('signum,code,word', [(signal.SIGINT, 130, 'interrupted (Ctrl-C)'),
                                              (signal.SIGTERM, 143, 'terminated (SIGTERM)')])
def test_outside_the_loop_a_signal_exits_at_once_with_one_line(tmp_path, signum, code, word):
  process = _start(tmp_path, _WAIT)
  process.send_signal(signum)
  _, err = process.communicate(timeout=30)
  assert process.returncode == code
  assert err == f'{word}: eval stopped before it finished\n'
  # The write in progress left no temporary file and the lock is released: nothing at all.
  assert list(tmp_path.iterdir()) == []


def test_in_the_loop_the_first_signal_asks_and_the_second_exits(tmp_path):
  process = _start(tmp_path, _LOOP)
  process.send_signal(signal.SIGTERM)
  assert process.stdout.readline().split() == ['requested', str(int(signal.SIGTERM))]
  process.send_signal(signal.SIGINT)
  _, err = process.communicate(timeout=30)
  assert process.returncode == 130
  assert err == 'interrupted (Ctrl-C): stopped at once by a second signal\n'
  assert list(tmp_path.iterdir()) == []


def test_a_signal_the_loop_did_not_act_on_exits_when_the_loop_ends(tmp_path):
  process = _start(tmp_path, _UNACTED)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=30)
  assert process.returncode == 143
  assert err == 'terminated (SIGTERM): eval stopped before it finished\n'
  assert list(tmp_path.iterdir()) == []
