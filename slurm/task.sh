#!/bin/bash
# One task's start under srun or mpirun: logs the rank, its local rank and the GPU trainguard will
# take (CUDA_VISIBLE_DEVICES entry number local rank modulo their count, as launcher/job.cc
# picks it), then replaces itself with the command (trainguard), so signals reach it directly.
set -euo pipefail
# mpirun sets OMPI_COMM_WORLD_*, and its ranks inherit the batch shell's SLURM_LOCALID (0);
# srun --mpi=pmix sets only SLURM_PROCID and SLURM_LOCALID.
rank=${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-0}}
local_rank=${OMPI_COMM_WORLD_LOCAL_RANK:-${SLURM_LOCALID:-0}}
visible=${CUDA_VISIBLE_DEVICES:-}
IFS=, read -r -a gpus <<<"$visible"
if ((${#gpus[@]})); then
  gpu="GPU ${gpus[local_rank % ${#gpus[@]}]} (entry $((local_rank % ${#gpus[@]})) of CUDA_VISIBLE_DEVICES=$visible)"
else
  gpu="CUDA_VISIBLE_DEVICES unset (every GPU of the node is visible: trainguard takes number $local_rank"
  gpu+=" modulo their count, if any)"
fi
printf '[task] rank %s local rank %s on %s: %s\n' "$rank" "$local_rank" "$(hostname)" "$gpu" >&2
exec "$@"
