#!/usr/bin/env bash
# Starts munged, slurmctld and slurmd: a one-node Slurm cluster on this machine, for
# tests/slurm_sweep.sh. Needs root and the Debian package slurm-wlm.
set -euo pipefail
host=$(hostname -s)
mkdir -p /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
chown munge:munge /run/munge 2>/dev/null || true
[ -f /etc/munge/munge.key ] || mungekey --create
pgrep -x munged > /dev/null || munged --force 2>/dev/null || sudo -u munge munged
mem=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=pretext-ci
SlurmctldHost=$host
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld > /dev/null || slurmctld
pgrep -x slurmd > /dev/null || slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then exit 0; fi
  sleep 1
done
echo "the local Slurm cluster did not come up"; sinfo || true; tail -5 /var/log/slurm/*.log; exit 1
