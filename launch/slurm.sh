#!/usr/bin/env bash
# SLURM: one task per node, each task driving every GPU of its node.
#
#   sbatch --nodes=2 launch/slurm.sh configs/spair.py:cat /shared/runs/spair_cat
#
# jax.distributed.initialize() reads the SLURM environment (coordinator, process count and
# index) by itself. The workdir must be on a filesystem every node sees.
#SBATCH --job-name=asic_jax
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
set -euo pipefail
CONFIG=${1:?config, e.g. configs/spair.py:cat}
WORKDIR=${2:?workdir on a shared filesystem}
shift 2
srun python -m asic_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
  --config.distributed=True "$@"
