#!/usr/bin/env bash
# One machine, several GPUs: the step is data-parallel over every local device by itself
# (shard_map over a ('data',) mesh), so this is the plain command. Pick GPUs with
# CUDA_VISIBLE_DEVICES; pairs per step (train.batch_size / 2) must divide by their count.
#
#   CUDA_VISIBLE_DEVICES=0,1,2,3 bash launch/multi_gpu.sh configs/spair.py:cat runs/spair_cat
set -euo pipefail
CONFIG=${1:?config, e.g. configs/spair.py:cat}
WORKDIR=${2:?workdir}
shift 2
python -m asic_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@"
