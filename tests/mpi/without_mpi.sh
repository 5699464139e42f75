#!/bin/sh
# An executable whose runtime was built without Open MPI (the aarch64 runtime is), started as one of
# 2 ranks, must refuse with exit 1 and say how to get distributed training, before reading any data.
# Usage: without_mpi.sh RUNNER EXE
runner=$1 exe=$2
out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$runner" "$exe" train --out /nonexistent/run 2>&1)
rc=$?
echo "exit $rc: $out"
[ "$rc" -eq 1 ] && echo "$out" | grep -q "was built without Open MPI, so it cannot train as one of 2 ranks: install it (apt-get install libopenmpi-dev openmpi-bin"
