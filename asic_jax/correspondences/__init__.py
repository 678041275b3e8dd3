"""Pseudo-correspondences, masks and parts from DINO descriptors."""
