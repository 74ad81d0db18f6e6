#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try (and test) `hydra/launcher=slurm` without a real cluster.
#
#   sudo scripts/slurm_local_cluster.sh start     # install slurm-wlm + munge if missing, configure, start, wait
#   scripts/slurm_local_cluster.sh status         # sinfo
#   sudo scripts/slurm_local_cluster.sh stop      # stop slurmd, slurmctld and munged again
#
# Debian/Ubuntu, as root (jobs run as the submitting user; root in CI). It writes /etc/slurm/slurm.conf for
# this host: its cores and memory, one partition (default `local`, or $SLURM_LOCAL_PARTITION), no accounting
# database. The daemons are started directly (no systemd), and the plugins avoid cgroups (proctrack/linuxproc,
# task/none), so it also runs in containers and sandboxes without systemd or a writable cgroup tree.
set -euo pipefail

PARTITION=${SLURM_LOCAL_PARTITION:-local}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
NODE=$(hostname -s)
WAIT_SECONDS=${SLURM_LOCAL_WAIT_SECONDS:-60}

log() { echo "slurm_local_cluster: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "run '$0 $1' as root (it installs packages, writes $CONF and starts daemons)"
        exit 1
    fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
}

write_conf() {
    local cpus mem_mb
    cpus=$(nproc)
    # Leave 512 MB to the system; SLURM refuses jobs that ask for more than RealMemory.
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
    cat >"$CONF" <<EOF
# Written by garbage-lit's scripts/slurm_local_cluster.sh: a one-node cluster on $NODE.
ClusterName=garbage-lit-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No systemd, no cgroups: track job processes through /proc, bind no tasks to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Quick turnaround for short test jobs.
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=300
KillWait=10
InactiveLimit=0
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    log "wrote $CONF: node $NODE, $cpus CPUs, $mem_mb MB, partition $PARTITION"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        fi
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key && chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.5
    done
    log "munged did not start (see /var/log/munge/munged.log)"
    exit 1
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }

running() {  # pid file: is the daemon it names alive? (no pgrep: procps may be missing on a fresh machine)
    local pid
    pid=$(cat "$1" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start() {
    need_root start
    install_packages
    write_conf
    start_munge
    if ! running "$RUN_DIR/slurmctld.pid"; then
        slurmctld -c   # -c: forget jobs and node states of an earlier start
    fi
    if ! running "$RUN_DIR/slurmd.pid"; then
        slurmd
    else
        scontrol reconfigure
    fi
    local deadline=$((SECONDS + WAIT_SECONDS)) state=""
    while [ $SECONDS -lt $deadline ]; do
        state=$(node_state)
        case "$state" in
            idle|mixed|allocated) sinfo; log "up: partition $PARTITION, node $NODE $state"; return ;;
            down*|drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 1
    done
    log "node $NODE not idle after ${WAIT_SECONDS}s (state '${state}'); logs: $LOG_DIR/slurmctld.log $LOG_DIR/slurmd.log"
    tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
    exit 1
}

stop_daemon() {  # name, pid file
    local pid
    pid=$(cat "$2" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
        log "$1 ($pid) did not stop; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
}

stop() {
    need_root stop
    scancel --user="$(id -un)" 2>/dev/null || true
    stop_daemon slurmd "$RUN_DIR/slurmd.pid"
    stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
    stop_daemon munged /run/munge/munged.pid
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
