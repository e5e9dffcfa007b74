#!/usr/bin/env bash
# Install SLURM and munge from Debian's packages without letting the package scripts start any service:
# a policy-rc.d that exits 101 tells invoke-rc.d "not allowed". The daemons are started by start.sh instead.
# Needs root (CI, a container). Idempotent: does nothing when sbatch, slurmctld and slurmd are already there.
set -euo pipefail

if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null; then
    echo "slurm already installed: $(sbatch --version)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install.sh: needs root to apt-get install slurm-wlm and munge" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
had_policy=0
if [ -e "$policy" ]; then
    had_policy=1
    cp -p "$policy" "$policy.evotrain-saved"
fi
restore_policy() {
    if [ "$had_policy" = 1 ]; then mv -f "$policy.evotrain-saved" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
echo "installed: $(sbatch --version)"
