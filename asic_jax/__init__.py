"""ASIC (Aligning Sparse in-the-wild Image Collections) in JAX/Flax."""

__version__ = '0.1.0'
