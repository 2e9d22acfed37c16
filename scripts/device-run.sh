#!/usr/bin/env bash
# Runs on the GPU machine from a bundle made by scripts/device-bundle.sh:
#   scripts/device-run.sh STEP...   with steps: info python python-bench remote remote-bench disk-small tests sanitize bench d2d worker-bench data-path bench-gpu kernel-variants block-pairs ce-calls sweep disk-sweep disk-gpu multi control control-ipc control-processes control-curve phases replay nccl nccl-bench
#   (each control step with -pinned appended runs with each endpoint's message threads pinned)
# Logs go to $OUT (when set) as well as stdout. BUNDLE names another bundle than .bundle (the
# GPU tests alone: scripts/gpu-tests-bundle.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source "${BUNDLE:-.bundle}/env.sh"
out=${OUT:-/tmp/kvbm-out}
mkdir -p "$out"
export KVBM_DISK_DIR=${KVBM_DISK_DIR:-/tmp}
steps=()
for step in "$@"; do
  # data-path: every row of the data path's goals (device->device on each copy path, the worker
  # path, remote transfers of distinct blocks, the control path with pinned message threads).
  if [ "$step" = data-path ]; then steps+=(d2d worker-bench remote-bench control-pinned); else steps+=("$step"); fi
done
for step in "${steps[@]}"; do
  echo "=== $step"
  placement=free
  [[ $step == *-pinned ]] && placement=pinned
  case $step in
    info) nvidia-smi -L; kvbm info ;;
    python)
      PYTHONPATH=$PWD/.bundle/python KVBM_CLI=$(command -v kvbm) timeout ${TEST_TIMEOUT:-300} \
        python3 -m pytest -q -p no:cacheprovider -rs tests/python 2>&1 | tee "$out/python-tests.log" | tail -15 ;;
    python-bench)
      PYTHONPATH=$PWD/.bundle/python python3 bench/python/transfer_overhead.py 2>&1 | tee "$out/python-bench.txt" ;;
    remote) KVBM_CLI=$(command -v kvbm) timeout ${TEST_TIMEOUT:-300} kvbm_remote_tests 2>&1 | tee "$out/remote-tests.log" | grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED|tests ran' ;;
    remote-bench)
      for transports in ${TRANSPORTS:-tcp sm}; do
        kvbm bench --remote "$transports" --sizes 64K,256K,1M,4M --bytes 256M --repeat "${REPEAT:-5}" 2>/dev/null | tee -a "$out/remote-bench.txt"
      done ;;
    tests) timeout ${TEST_TIMEOUT:-300} kvbm_gpu_tests 2>&1 | tee "$out/gpu-tests.log" | grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED|tests ran' ;;
    sanitize)
      # Left out: the out-of-memory test (it makes CUDA calls fail on purpose, which memcheck
      # counts as errors) and the 72,000-chunk test (hours under memcheck). The two cases of
      # 64 KiB and 100,003-byte chunks run short launches whose descriptors warps share.
      timeout ${TEST_TIMEOUT:-300} /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 9 kvbm_gpu_tests \
        --gtest_filter='AllPairs/GpuTransfer.*_4096_*:AllPairs/GpuTransfer.*_1000_*:AllPairs/GpuTransfer.*/pinned_to_device_65536_kernel:AllPairs/GpuTransfer.*/device_to_device_100003_kernel:GpuTransferErrors.*:GpuRegion.*:GpuBatches.*:Chunks/GpuBlockPairs.*/0:Chunks/GpuBlockPairs.*/1:StreamProgress.*:GpuFence.*:SmallChunks/GpuCopyEngineCalls.*:-GpuTransferErrors.OutOfDeviceMemory*:GpuBatches.Thousands*' \
        > "$out/sanitizer.log" 2>&1
      echo "compute-sanitizer exit $?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' "$out/sanitizer.log" | tail -5 ;;
    bench) kvbm bench --json > "$out/bench-default.json" 2> "$out/bench-default.err"; kvbm bench 2>/dev/null | tee "$out/bench-default.txt" ;;
    worker-bench)
      # The worker path: a leader driving `kvbm worker` processes (bench/worker_path.cpp).
      KVBM_CLI=$(command -v kvbm) kvbm_worker_bench "${SIZES_WORKER:-64K,2M}" "${IN_FLIGHT:-8}" "${REPEAT:-3}" 2>&1 | tee "$out/worker-bench.txt" ;;
    d2d)
      # Device -> device on each copy path, auto (the default) beside the two it chooses between.
      for path in auto kernel copy_engine; do
        kvbm bench --pairs device:device --sizes 4K,16K,64K,256K,512K,2M --copy-path $path --repeat "${REPEAT:-3}" 2>/dev/null | tee "$out/bench-d2d-$path.txt"
      done ;;
    bench-gpu)
      for sms in ${SMS:-8}; do
        kvbm bench --pairs pinned:device,device:pinned --sizes 4K,16K,64K,256K,512K,2M --sms "$sms" --repeat "${REPEAT:-3}" 2>/dev/null | tee -a "$out/bench-kernel.txt"
      done
      for path in copy_engine auto; do
        kvbm bench --pairs pinned:device,device:pinned --sizes 4K,16K,64K,256K,512K,2M --copy-path $path --repeat "${REPEAT:-3}" 2>/dev/null | tee "$out/bench-$path.txt"
      done ;;
    kernel-variants)
      # The kernel path's batches on one stream or taking turns on two, with descriptor lists
      # uploaded or read in pinned memory: each variant in turn, REPEAT rounds.
      for round in $(seq "${REPEAT:-2}"); do
        for variant in "1 1" "2 1" "1 0" "2 0"; do
          read -r streams upload <<< "$variant"
          kvbm bench --pairs pinned:device,device:pinned --sizes 4K,16K,64K,256K,512K,2M --repeat 1 \
            --tune cuda.kernel_streams=$streams --tune cuda.upload_descriptors=$upload 2>/dev/null |
            tail -12 | sed "s/^/streams$streams upload$upload /"
        done
      done | tee "$out/kernel-variants.txt" ;;
    block-pairs)
      # The kernel path's long batches as block pairs (the default) or as descriptor lists
      # (cuda.block_kernel=0): rounds interleaved, so both see the same machine.
      for round in $(seq "${REPEAT:-3}"); do
        for block in 1 0; do
          kvbm bench --pairs pinned:device,device:pinned --sizes 4K,16K,64K,256K,512K,2M --tune cuda.block_kernel=$block \
            --sms "${SMS:-8}" --repeat 1 2>/dev/null | tail -12 | sed "s/^/block$block /"
        done
      done | tee "$out/block-pairs.txt" ;;
    ce-calls)
      # The copy-engine path: streams x most copies per cudaMemcpyBatchAsync call (the second
      # figure; 1073741824 puts a stream's whole share in one call),
      # rounds interleaved.
      for round in $(seq "${REPEAT:-2}"); do
        for variant in "2 1024" "1 1024" "2 1073741824" "4 1024" "2 256"; do
          read -r streams calls <<< "$variant"
          kvbm bench --pairs pinned:device,device:pinned --sizes 4K,16K,64K,256K,2M --copy-path copy_engine --repeat 1 \
            --tune cuda.copy_engine_streams=$streams --tune cuda.copy_engine_call_copies=$calls 2>/dev/null |
            tail -10 | sed "s/^/ce$streams calls$calls /"
        done
      done | tee "$out/ce-calls.txt" ;;
    sweep)
      gpu=pinned:device,device:pinned
      kvbm bench --pairs $gpu --sizes 2M --bytes 1G 2>/dev/null | tail -2 | sed 's/^/1G kernel8 /'
      kvbm bench --pairs $gpu --sizes 4K,64K,2M --tune cuda.copy_threads=512 2>/dev/null | tail -6 | sed 's/^/threads512 /'
      for s in 1 4; do
        kvbm bench --pairs $gpu --sizes 4K,16K,256K,2M --copy-path copy_engine --tune cuda.copy_engine_streams=$s 2>/dev/null | tail -8 | sed "s/^/ce$s /"
      done 2>&1 | tee "$out/sweep.txt" ;;
    disk-sweep)
      for qd in 32 64 128; do
        KVBM_DISK_QUEUE_DEPTH=$qd kvbm bench --pairs system:disk,disk:system --sizes 256K,2M 2>/dev/null | tail -4 | sed "s/^/qd$qd /"
      done | tee "$out/disk-sweep.txt" ;;
    disk-small)
      # Small blocks to and from disk beside the random-I/O ceiling (issue table: 256 MiB, median of 3).
      kvbm bench --pairs system:disk,disk:system --sizes 4K,16K,64K,256K,2M --bytes 256M --repeat "${REPEAT:-3}" 2>/dev/null | tee "$out/disk-small.txt"
      kvbm bench --pairs device:disk,disk:device --sizes 4K,16K,64K,256K --bytes 256M --repeat "${REPEAT:-3}" 2>/dev/null | tee -a "$out/disk-small.txt" ;;
    disk-gpu)
      # Device <-> disk: the two-hop through pinned memory, then cuFile (GPUDirect Storage).
      # Nine runs a row (DISK_REPEAT): the GPU machine's virtual disk reads anywhere from 2.1 to
      # 3.6 GB/s from one run to the next, and a median of three still swung 0.70-1.31.
      kvbm bench --pairs device:disk,disk:device --sizes 256K,2M --repeat "${DISK_REPEAT:-9}" 2>/dev/null | tee "$out/disk-gpu.txt"
      kvbm bench --pairs device:disk,disk:device --sizes 256K,2M --repeat "${DISK_REPEAT:-9}" --gds 2>"$out/disk-gds.err" | tee -a "$out/disk-gpu.txt"
      grep -i "cufile\|GPUDirect" "$out/disk-gds.err" | head -3 ;;
    nccl) KVBM_CLI=$(command -v kvbm) timeout ${TEST_TIMEOUT:-300} kvbm_nccl_tests 2>&1 | tee "$out/nccl-tests.log" | grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED|OK \]|Failure|error' ;;
    nccl-bench) kvbm_nccl_bench "${NCCL_MIB:-256}" "${REPEAT:-5}" ${NCCL_CALLS:-} 2>&1 | tee "$out/nccl-bench.txt" ;;
    multi) KVBM_CLI=$(command -v kvbm) kvbm_multi_tests 2>&1 | tee "$out/multi-tests.log" | grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED|OK \]' ;;
    control|control-pinned) kvbm_control_bench 3000 tcp threads "$placement" 2>/dev/null | tee -a "$out/$step.txt" ;;
    control-ipc|control-ipc-pinned) kvbm_control_bench 3000 ipc threads "$placement" 2>/dev/null | tee -a "$out/$step.txt" ;;
    control-processes|control-processes-pinned)
      KVBM_CLI=$(command -v kvbm) kvbm_control_bench 3000 tcp processes "$placement" 2>/dev/null |
        tee -a "$out/$step.txt" ;;
    control-curve|control-curve-pinned)
      # The same round trips with CURVE on and off, in one run: threads, then processes.
      kvbm_control_bench 3000 tcp threads "$placement" curve 2>/dev/null | tee -a "$out/$step.txt"
      KVBM_CLI=$(command -v kvbm) kvbm_control_bench 3000 tcp processes "$placement" curve 2>/dev/null |
        tee -a "$out/$step.txt" ;;
    phases) kvbm_gpu_phases 4 2>/dev/null | tee "$out/phases.txt" ;;
    replay)
      # The block manager with device, host and disk tiers on the synthetic multi-turn trace:
      # sequential (deterministic, with the offline bound) for each policy, then overlapping.
      for policy in lru frequency; do
        kvbm replay --sequential --synthetic 4000 --device-blocks 256 --host-blocks 1024 --disk-blocks 16384 \
          --block-bytes 65536 --policy $policy 2>/dev/null | tee -a "$out/replay.txt"
      done
      kvbm replay --synthetic 4000 --device-blocks 256 --host-blocks 1024 --disk-blocks 16384 --block-bytes 65536 \
        --speed 20 2>/dev/null | tee -a "$out/replay.txt" ;;
    *) echo "unknown step $step" ;;
  esac
done
