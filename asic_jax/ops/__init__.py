"""Pure jax.numpy operations: no parameters, no devices."""
