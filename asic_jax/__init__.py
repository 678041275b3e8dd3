"""ASIC (Aligning Sparse in-the-wild Image Collections) in JAX/Flax.

After training, `asic_jax.load(workdir)` gives the trained map as an `Alignment`
(`asic_jax.api`): transfer points, map new photos, export dense maps.
"""

__version__ = '0.1.0'


def load(workdir, step=None):
  """`asic_jax.api.load`: the trained run in `workdir` (imported here lazily, with JAX)."""
  from asic_jax import api  # pylint: disable=import-outside-toplevel
  return api.load(workdir, step)
