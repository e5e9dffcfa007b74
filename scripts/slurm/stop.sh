#!/usr/bin/env bash
# Stop the daemons scripts/slurm/start.sh started, by the PIDs it recorded (never by name: another SLURM or
# munge on this machine is left alone). Pass --purge to also delete the folder.
set -uo pipefail

dir=${EVOTRAIN_SLURM_DIR:-/tmp/evotrain-slurm}

stop_pid() {  # name, pidfile
    local name=$1 pidfile=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "stop.sh: stopped $name ($pid)" >&2
    fi
    rm -f "$pidfile"
}

stop_pid slurmd "$dir/slurmd.pid.own"
stop_pid slurmctld "$dir/slurmctld.pid.own"
stop_pid munged "$dir/munged.pid"
if [ "${1:-}" = --purge ]; then
    rm -rf "$dir"
fi
