"""A real headless browser for tests: Debian's `chromium`, driven over the Chrome DevTools
protocol on a pipe (`--remote-debugging-pipe`: commands on its fd 3, replies and events on its
fd 4, each message JSON ending in a NUL byte). Standard library only.

  with Chromium() as browser:
    page = browser.open('file:///tmp/page.html')
    page.evaluate('document.title')
    page.click(120.5, 80)
"""

import base64
import json
import os
import pathlib
import select
import shutil
import subprocess
import tempfile
import time

# The flags the project runs it with (root in CI: no sandbox; nothing reaches the network).
FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-extensions', '--mute-audio', '--remote-debugging-pipe')


class BrowserError(RuntimeError):
  """The browser is missing, did not start, or answered a command with an error."""


def find() -> str:
  """The chromium executable; BrowserError when there is none."""
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    path = shutil.which(name)
    if path:
      return path
  raise BrowserError('no chromium on PATH (apt-get install -y chromium; .ci/run does)')


class Page:
  """One tab, attached in flat mode (its session id on every command)."""

  def __init__(self, browser: 'Chromium', session: str):
    self.browser, self.session = browser, session

  def send(self, method: str, **params):
    return self.browser.send(method, session=self.session, **params)

  def evaluate(self, expression: str):
    """The value of a JavaScript expression (awaited if a promise), as JSON."""
    reply = self.send('Runtime.evaluate',
                      expression=expression,
                      returnByValue=True,
                      awaitPromise=True)
    if 'exceptionDetails' in reply:
      raise BrowserError(f'{expression}: {reply["exceptionDetails"]}')
    return reply['result'].get('value')

  def wait_for(self, expression: str, timeout: float = 30.0):
    """Polls until `expression` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      value = self.evaluate(expression)
      if value:
        return value
      time.sleep(0.05)
    raise BrowserError(f'timed out waiting for {expression}')

  def requests(self) -> list[str]:
    """The URL of every request this page has made so far (`Network.requestWillBeSent`)."""
    return [
        event['params']['request']['url']
        for event in self.browser.events
        if event.get('sessionId') == self.session
        and event.get('method') == 'Network.requestWillBeSent'
    ]

  def mouse(self, kind: str, x: float, y: float, **extra) -> None:
    self.send('Input.dispatchMouseEvent', type=kind, x=x, y=y, **extra)

  def click(self, x: float, y: float) -> None:
    """A left click at viewport CSS pixels (x, y), as a user's: moved, pressed, released."""
    self.mouse('mouseMoved', x, y)
    self.mouse('mousePressed', x, y, button='left', clickCount=1)
    self.mouse('mouseReleased', x, y, button='left', clickCount=1)

  def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> None:
    """A PNG of the page (the whole document when `full_page`)."""
    params = dict(format='png')
    if full_page:
      size = self.evaluate('[document.documentElement.scrollWidth, '
                           'document.documentElement.scrollHeight]')
      params.update(captureBeyondViewport=True,
                    clip=dict(x=0, y=0, width=size[0], height=size[1], scale=1))
    data = self.send('Page.captureScreenshot', **params)['data']
    pathlib.Path(path).write_bytes(base64.b64decode(data))


class Chromium:
  """A headless chromium process with a fresh profile, ended on exit."""

  def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60.0):
    self.width, self.height, self.timeout = width, height, timeout
    self._id, self._buffer = 0, b''
    self.events: list[dict] = []

  def __enter__(self) -> 'Chromium':
    executable = find()
    self._profile = tempfile.mkdtemp(prefix='asic-chromium-')
    commands_read, self._commands = os.pipe()
    self._replies, replies_write = os.pipe()
    args = [
        *FLAGS, f'--user-data-dir={self._profile}', f'--window-size={self.width},'
        f'{self.height}', 'about:blank'
    ]
    # The shell gives chromium its two pipes as fds 3 and 4, as the protocol wants them.
    script = f'exec "$0" "$@" 3<&{commands_read} 4>&{replies_write}'
    self._log = pathlib.Path(self._profile) / 'stderr.txt'
    with self._log.open('wb') as log:  # a file, not a pipe: chromium's chatter never blocks it
      self.process = subprocess.Popen(['bash', '-c', script, executable, *args],
                                      pass_fds=(commands_read, replies_write),
                                      stdin=subprocess.DEVNULL,
                                      stdout=log,
                                      stderr=log)
    os.close(commands_read)
    os.close(replies_write)
    try:
      self.send('Target.setDiscoverTargets', discover=False)
    except BrowserError:
      self.__exit__(None, None, None)
      raise
    return self

  def __exit__(self, *_) -> None:
    try:
      if self.process.poll() is None:
        try:
          self.send('Browser.close')
        except BrowserError:
          pass
        try:
          self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
          self.process.kill()
          self.process.wait()
    finally:
      for fd in (self._commands, self._replies):
        try:
          os.close(fd)
        except OSError:
          pass
      shutil.rmtree(self._profile, ignore_errors=True)

  def _read_message(self, deadline: float) -> dict:
    while b'\0' not in self._buffer:
      remaining = deadline - time.monotonic()
      if remaining <= 0 or not select.select([self._replies], [], [], remaining)[0]:
        raise BrowserError('chromium did not answer in time')
      chunk = os.read(self._replies, 1 << 20)
      if not chunk:
        raise BrowserError('chromium closed the protocol pipe: ' +
                           self._log.read_text(errors='replace')[-2000:])
      self._buffer += chunk
    message, self._buffer = self._buffer.split(b'\0', 1)
    return json.loads(message)

  def send(self, method: str, session: str | None = None, **params) -> dict:
    """Sends one command and returns its result (events that arrive first are kept)."""
    self._id += 1
    message = dict(id=self._id, method=method, params=params)
    if session:
      message['sessionId'] = session
    os.write(self._commands, json.dumps(message).encode() + b'\0')
    deadline = time.monotonic() + self.timeout
    while True:
      reply = self._read_message(deadline)
      if reply.get('id') != self._id:
        self.events.append(reply)
        continue
      if 'error' in reply:
        raise BrowserError(f'{method}: {reply["error"]}')
      return reply.get('result', {})

  def open(self, url: str, timeout: float = 60.0) -> Page:
    """A new tab at `url` (`self.width` x `self.height` CSS pixels), once it has loaded."""
    target = self.send('Target.createTarget', url='about:blank')['targetId']
    session = self.send('Target.attachToTarget', targetId=target, flatten=True)['sessionId']
    page = Page(self, session)
    page.send('Page.enable')
    page.send('Runtime.enable')
    page.send('Network.enable')  # so that `requests` sees every request the page makes
    page.send('Emulation.setDeviceMetricsOverride',
              width=self.width,
              height=self.height,
              deviceScaleFactor=1,
              mobile=False)
    page.send('Page.navigate', url=url)
    page.wait_for('document.readyState === "complete"', timeout)
    return page
