"""One optax optimizer over the whole parameter tree {align, grid}, and its schedules: the
paper's constant rate, the released code's cosine with warm restarts, and one cosine decay to
zero over the run (`cosine`: measured on real photos to steady the end of a short run;
README "Accuracy on real photos")."""

import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ('constant', 'cosine_restarts', 'cosine')


def cosine_restarts(peak: float, period: float, period_mult: int, decay: float) -> optax.Schedule:
  """GANgealing's `DecayingCosineAnnealingWarmRestarts`, as the released code steps it.

  The released loop steps the scheduler with `epoch = i / period` after update i,
  so update `count` (0-based, optax's count) uses the rate at `e = count / period`:
  restart n starts at e = (mult^n - 1) / (mult - 1), lasts mult^n, and peaks at
  `peak * decay^n`. With the defaults: 3e-3 at step 0, 2.7e-3 at 10k, 1.35e-3 at 20k.
  """
  if period_mult < 1:
    raise ValueError(f'optim.period_mult must be >= 1, got {period_mult}')

  def schedule(count):
    count = jnp.asarray(count, jnp.float32)
    e = count / period
    if period_mult == 1:
      n = jnp.floor(e)
      cycles_before = n
    else:
      # The margin keeps floor() exact where e sits on a restart (log2(4) = 1.99999..).
      n = jnp.floor(jnp.log(e * (period_mult - 1) + 1) / jnp.log(period_mult) + 1e-6)
      cycles_before = (period_mult**n - 1) / (period_mult - 1)
    # What is left of the current cycle as a ratio of step counts (exact integers,
    # one rounding), and (1 + cos(pi t)) / 2 = sin^2(pi (1 - t) / 2): float32 keeps
    # its relative precision even where the rate nears zero at the end of a cycle.
    cycle = period * period_mult**n
    left = (cycle - (count - period * cycles_before)) / cycle
    return peak * decay**n * jnp.sin(0.5 * jnp.pi * left)**2

  return schedule


def learning_rate(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The schedule `config.optim.schedule` names."""
  optim = config.optim
  if optim.schedule == 'constant':
    return optax.constant_schedule(optim.lr)
  if optim.schedule == 'cosine_restarts':
    return cosine_restarts(optim.lr, optim.period, optim.period_mult, optim.decay)
  if optim.schedule == 'cosine':
    # From optim.lr at step 0 to 0 at train.num_steps (a run extended by more steps after it
    # finished continues on the longer curve: its rate rises from where it is).
    return optax.cosine_decay_schedule(optim.lr, max(int(config.train.num_steps), 1))
  raise ValueError(f'optim.schedule must be one of {SCHEDULES}, got {optim.schedule!r}')


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam over every parameter (U-Net and canonical grid) with one schedule."""
  optim = config.optim
  return optax.adam(learning_rate(config), b1=optim.b1, b2=optim.b2, eps=optim.eps)
