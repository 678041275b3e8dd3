"""Launchers: sweeps over configs, aggregation of their results, multi-host scripts."""
