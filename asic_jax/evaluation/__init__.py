"""Evaluation: `transfer` (ASIC's keypoint transfer through the canonical space), `metrics` (PCK,
k-CyPCK), `protocol` (each dataset's protocol, the results files `eval/*.json` and `.md`) and
`baselines` (NN and MLS under the same protocol). Drawing and the report read the results files,
not this package.
"""
