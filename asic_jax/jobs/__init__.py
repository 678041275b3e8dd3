"""The jobs `config.mode` names, one module each with `run(config, workdir) -> dict`:
`train`, `extract`, `eval`, `baseline`, `visualize` and `map`. `asic_jax.main.run` picks one;
nothing in the library imports them.
"""
