"""`python tests/fault_driver.py ARGS`: `python -m asic_jax.main ARGS` with one fault injected
(tests only): the faults that kill, stop or fill a real run, at a chosen moment.

`ASIC_FAULT` (JSON) names the moment and what happens there:

  target  'module:Name.attr', the function whose call is the moment (an async one too: Orbax's
          `AtomicRenameTemporaryPath.finalize`, the rename that completes a save)
  call    which call of it (1 = the first)
  when    'before' (default) or 'after' the call runs
  action  'kill' (SIGKILL), 'term' (SIGTERM), 'int' (SIGINT) to this process; 'half_line'
          (`logs.MetricsWriter.write` only: half of its line appended, then SIGKILL, as a kill in
          the middle of the write leaves it); 'enospc' (the call raises OSError ENOSPC);
          'int_in_gc' (SIGINT while a garbage-collector callback runs, as JAX's do: Python
          swallows an exception raised there)
  delay   seconds after the moment that a signal arrives (from a timer thread, so it lands
          wherever the run is then, as an outside signal does); 0: at once
  match   optional: only calls whose first argument (a path, say) contains this text count

The driver prints nothing itself: what the run prints is what the user would see.
"""

import errno
import functools
import gc
import importlib
import inspect
import json
import os
import pathlib
import runpy
import signal
import sys
import threading

ROOT = pathlib.Path(__file__).parent.parent
SIGNALS = {'kill': signal.SIGKILL, 'term': signal.SIGTERM, 'int': signal.SIGINT}


def _int_in_gc() -> None:
  """A collection whose callback receives SIGINT (and runs on, so that Python's handler runs
  inside the callback)."""

  def callback(phase, info):
    del info
    if phase == 'start':
      gc.callbacks.remove(callback)
      os.kill(os.getpid(), signal.SIGINT)
      sum(range(10_000))

  gc.callbacks.append(callback)
  gc.collect()


def _act(fault: dict, args: tuple) -> None:
  action = fault['action']
  if action == 'enospc':
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  if action == 'int_in_gc':
    _int_in_gc()
    return
  if action == 'half_line':
    writer, record = args[0], args[1]
    line = json.dumps(record) + '\n'
    with writer.path.open('a') as f:
      f.write(line[:len(line) // 2])
    action = 'kill'
  send = functools.partial(os.kill, os.getpid(), SIGNALS[action])
  if fault.get('delay', 0) > 0:
    threading.Timer(fault['delay'], send).start()
  else:
    send()


def _inject(fault: dict) -> None:
  module_name, attr_path = fault['target'].split(':')
  owner = importlib.import_module(module_name)
  *parents, name = attr_path.split('.')
  for part in parents:
    owner = getattr(owner, part)
  original = getattr(owner, name)
  calls = [0]
  after = fault.get('when', 'before') == 'after'

  def hit(args) -> bool:
    if fault.get('match') and not (args and fault['match'] in str(args[0])):
      return False
    calls[0] += 1
    if calls[0] == fault['call'] and not after:
      _act(fault, args)
    return calls[0] == fault['call'] and after

  if inspect.iscoroutinefunction(original):

    @functools.wraps(original)
    async def wrapped(*args, **kwargs):
      now = hit(args)
      result = await original(*args, **kwargs)
      if now:
        _act(fault, args)
      return result
  else:

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
      now = hit(args)
      result = original(*args, **kwargs)
      if now:
        _act(fault, args)
      return result

  setattr(owner, name, wrapped)


if __name__ == '__main__':
  sys.path.insert(0, str(ROOT))  # this checkout's asic_jax, whatever is installed
  if os.environ.get('ASIC_FAULT'):
    _inject(json.loads(os.environ['ASIC_FAULT']))
  sys.argv = ['asic_jax.main'] + sys.argv[1:]
  runpy.run_module('asic_jax.main', run_name='__main__', alter_sys=True)
