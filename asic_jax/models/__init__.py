"""Flax modules: the alignment U-Net, the canonical grid, DINO, perceptual nets."""
