#!/usr/bin/env bash
# Train on every chip of a Cloud TPU VM pod slice: the same command on every worker.
#
#   bash launch/tpu_pod.sh my-tpu us-central2-b configs/spair.py:cat /mnt/shared/runs/spair_cat
#
# The repository must be at ~/asic_jax on every worker (e.g. `--worker=all --command="git clone
# ..."` first). The workdir must be a path every worker sees (an NFS/Filestore mount, or a
# bucket mounted with gcsfuse): checkpoints are written through the local filesystem. On TPU VMs
# jax.distributed.initialize() finds the coordinator by itself.
set -euo pipefail
TPU_NAME=${1:?tpu name}
ZONE=${2:?zone}
CONFIG=${3:?config, e.g. configs/spair.py:cat}
WORKDIR=${4:?workdir on a shared filesystem or bucket}
shift 4
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  cd ~/asic_jax &&
  pip install -q -r requirements.txt -e . 'jax[tpu]==0.10.2' &&
  python -m asic_jax.main --config=$CONFIG --workdir=$WORKDIR --config.distributed=True $*"
