#!/usr/bin/env bash
# Start a one-node SLURM "cluster" on this machine, for tests and development: munged, slurmctld and slurmd
# run in the background with every file (config, state, logs, pid files, munge socket and key) under one
# folder, $EVOTRAIN_SLURM_DIR (default /tmp/evotrain-slurm). Two fake GPUs are character devices made by mknod
# and declared in gres.conf, so `--gres=gpu:N` jobs get CUDA_VISIBLE_DEVICES as on a real GPU node.
# Needs root (mknod, munged as the munge user). Waits until the node is idle, then prints the variable to
# export: `eval "$(bash scripts/slurm/start.sh)"`. Stop with scripts/slurm/stop.sh. Running it again while the
# cluster is up only prints the export line.
set -euo pipefail

dir=${EVOTRAIN_SLURM_DIR:-/tmp/evotrain-slurm}
port=${EVOTRAIN_SLURM_PORT:-6817}        # slurmctld; slurmd listens on port+1
cpus=${EVOTRAIN_SLURM_CPUS:-4}           # declared, not detected (config_overrides): jobs here mostly sleep
memory_mb=${EVOTRAIN_SLURM_MEMORY_MB:-16000}
node=$(hostname -s)
conf=$dir/slurm.conf

log() { echo "start.sh: $*" >&2; }

for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { log "$tool not found: run scripts/slurm/install.sh first"; exit 1; }
done

if [ -f "$conf" ] && SLURM_CONF=$conf timeout 10 sinfo -h -n "$node" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
    log "already running ($conf)"
    echo "export SLURM_CONF=$conf"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    log "needs root (mknod, munged)"
    exit 1
fi

mkdir -p "$dir"/{state,spool,dev,munge,log}
chmod 755 "$dir"
chown munge:munge "$dir/munge"
chmod 755 "$dir/munge"

# Two fake GPUs: character devices with NVIDIA's major number; nothing ever opens them.
for i in 0 1; do
    [ -c "$dir/dev/nvidia$i" ] || mknod "$dir/dev/nvidia$i" c 195 "$i"
done

# A key of our own, so this cluster never depends on (or disturbs) a system munge.
if [ ! -s "$dir/munge/munge.key" ]; then
    mungekey --create --keyfile="$dir/munge/munge.key" --force
    chown munge:munge "$dir/munge/munge.key"
    chmod 600 "$dir/munge/munge.key"
fi

cat > "$conf" <<CONF
# Written by scripts/slurm/start.sh: a one-node cluster for evotrain's tests.
ClusterName=evotrain
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket.2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
GresTypes=gpu
DefMemPerCPU=500
# Jobs are killed at their time limit, with 5 s between SIGTERM and SIGKILL.
OverTimeLimit=0
KillWait=5
# Finished jobs stay visible to squeue/scontrol for 10 minutes (there is no accounting database here).
MinJobAge=600
SlurmdTimeout=30
# A job in partition "urgent" preempts jobs of "debug": requeued, or ended as PREEMPTED when it cannot be.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=$node MaxTime=INFINITE State=UP PriorityTier=10
CONF
cat > "$dir/gres.conf" <<CONF
NodeName=$node Name=gpu File=$dir/dev/nvidia[0-1]
CONF

start_daemon() {  # name, pidfile, command...: background the daemon in the foreground mode, record its pid
    local name=$1 pidfile=$2
    shift 2
    "$@" >>"$dir/log/$name.out" 2>&1 &
    echo $! > "$pidfile"
}

start_daemon munged "$dir/munged.pid" setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --socket="$dir/munge/munge.socket.2" --key-file="$dir/munge/munge.key" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" --pid-file="$dir/munge/munged.pid.own"
for _ in $(seq 50); do [ -S "$dir/munge/munge.socket.2" ] && break; sleep 0.1; done
[ -S "$dir/munge/munge.socket.2" ] || { log "munged did not start: $(tail -5 "$dir/log/munged.out")"; exit 1; }

export SLURM_CONF=$conf
start_daemon slurmctld "$dir/slurmctld.pid.own" slurmctld -D -i -f "$conf"
start_daemon slurmd "$dir/slurmd.pid.own" slurmd -D -f "$conf" -N "$node"

for _ in $(seq 120); do
    state=$(timeout 5 sinfo -h -n "$node" -o %t 2>/dev/null || true)
    case $state in idle|mix|alloc) break ;; esac
    sleep 0.5
done
case $state in
    idle|mix|alloc) ;;
    *)
        log "node $node is not up (state: '${state}'); logs in $dir/log"
        tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
        exit 1 ;;
esac
log "node $node up ($dir)"
echo "export SLURM_CONF=$conf"
