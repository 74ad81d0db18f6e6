#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try (and test) `hydra/launcher=slurm` without a real cluster,
# with job accounting (slurmdbd on MariaDB, so `sacct` tells how a job ended) and a PostgreSQL server for
# Optuna studies whose trials run as SLURM jobs.
#
#   sudo scripts/slurm_local_cluster.sh start     # install what is missing, configure, start, wait
#   scripts/slurm_local_cluster.sh status         # sinfo, and the study database's URL
#   sudo scripts/slurm_local_cluster.sh stop      # stop the daemons again
#
# Debian/Ubuntu, as root (jobs run as the submitting user; root in CI). It writes /etc/slurm/slurm.conf and
# slurmdbd.conf for this host: its cores and memory, one partition (default `local`, or $SLURM_LOCAL_PARTITION).
# The daemons are started directly (no systemd), and the plugins avoid cgroups (proctrack/linuxproc,
# task/none), so it also runs in containers and sandboxes without systemd or a writable cgroup tree.
# The study database: PostgreSQL role and database `garbage_lit` (password `garbage_lit`, may create databases):
#   hparams_search.storage=postgresql+psycopg://garbage_lit:garbage_lit@127.0.0.1:5432/garbage_lit
set -euo pipefail

PARTITION=${SLURM_LOCAL_PARTITION:-local}
CLUSTER=garbage-lit-local
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
DBD_CONF=$CONF_DIR/slurmdbd.conf
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
NODE=$(hostname -s)
WAIT_SECONDS=${SLURM_LOCAL_WAIT_SECONDS:-60}
ACCT_DB=slurm_acct_db   # slurmdbd's MariaDB database; MariaDB user slurm, password slurm, local socket only
STUDY_DB=garbage_lit    # PostgreSQL role and database for Optuna studies
STUDY_URL="postgresql+psycopg://$STUDY_DB:$STUDY_DB@127.0.0.1:5432/$STUDY_DB"

log() { echo "slurm_local_cluster: $*" >&2; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "run '$0 $1' as root (it installs packages, writes $CONF and starts daemons)"
        exit 1
    fi
}

install_packages() {
    local missing=0 command
    for command in slurmctld slurmd sbatch munged slurmdbd mariadbd pg_ctlcluster; do
        command -v "$command" >/dev/null || missing=1
    done
    if [ "$missing" -eq 0 ]; then
        return
    fi
    log "installing slurm-wlm, munge, slurmdbd, mariadb-server and postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge slurmdbd mariadb-server postgresql
}

sql() { mariadb --batch --skip-column-names -e "$1"; }

start_mariadb() {  # the accounting database, reached by slurmdbd through the local socket
    if ! mariadb-admin ping >/dev/null 2>&1; then
        /etc/init.d/mariadb start >/dev/null
    fi
    sql "CREATE DATABASE IF NOT EXISTS $ACCT_DB;
         CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
         GRANT ALL ON $ACCT_DB.* TO 'slurm'@'localhost';"
}

highest_job_id() {  # the accounting database's newest job id; 0 before the first job
    sql "SELECT COALESCE(MAX(id_job), 0) FROM $ACCT_DB.\`${CLUSTER}_job_table\`" 2>/dev/null || echo 0
}

write_conf() {
    local cpus mem_mb first_job
    cpus=$(nproc)
    # Leave 512 MB to the system; SLURM refuses jobs that ask for more than RealMemory.
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
    # slurmctld -c (below) forgets earlier jobs; numbering on from the accounting database keeps job ids unique,
    # so `sacct -j <id>` never answers with a job of an earlier start.
    first_job=$(( $(highest_job_id) + 1 ))
    mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
    cat >"$CONF" <<EOF
# Written by garbage-lit's scripts/slurm_local_cluster.sh: a one-node cluster on $NODE.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job (time limit, preemption) may start again after cred_expire seconds (default 120).
AuthInfo=cred_expire=10
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No systemd, no cgroups: track job processes through /proc, bind no tasks to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Job accounting in slurmdbd (MariaDB), so sacct tells how a job ended: COMPLETED, CANCELLED, TIMEOUT, ...
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
FirstJobId=$first_job
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
    log "wrote $CONF: node $NODE, $cpus CPUs, $mem_mb MB, partition $PARTITION, first job id $first_job"
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

start_slurmdbd() {  # then make sure the accounting database knows this cluster
    cat >"$DBD_CONF" <<EOF
# Written by garbage-lit's scripts/slurm_local_cluster.sh: job accounting for $CLUSTER in MariaDB.
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=$ACCT_DB
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
EOF
    chmod 600 "$DBD_CONF"
    if ! running "$RUN_DIR/slurmdbd.pid"; then
        slurmdbd
    fi
    local clusters
    for _ in $(seq 60); do
        if clusters=$(sacctmgr -n -P show cluster format=cluster 2>/dev/null); then
            grep -qx "$CLUSTER" <<<"$clusters" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
            return
        fi
        sleep 0.5
    done
    log "slurmdbd does not answer sacctmgr after 30s (see $LOG_DIR/slurmdbd.log)"
    tail -n 20 "$LOG_DIR/slurmdbd.log" >&2 || true
    exit 1
}

start_postgres() {  # the newest installed PostgreSQL's cluster `main`, with the study role and database
    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    if ! pg_lsclusters -h | grep -q "^$version main "; then
        pg_createcluster "$version" main >/dev/null
    fi
    if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
        pg_ctlcluster "$version" main start
    fi
    runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 >/dev/null <<EOF
SELECT 'CREATE ROLE $STUDY_DB LOGIN CREATEDB PASSWORD ''$STUDY_DB'''
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$STUDY_DB') \gexec
SELECT 'CREATE DATABASE $STUDY_DB OWNER $STUDY_DB'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$STUDY_DB') \gexec
EOF
    log "study database (PostgreSQL $version): $STUDY_URL"
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
    mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR"
    start_munge
    start_mariadb
    write_conf        # after MariaDB: the first job id comes from the accounting database
    start_slurmdbd
    start_postgres
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
    stop_daemon slurmdbd "$RUN_DIR/slurmdbd.pid"
    stop_daemon munged /run/munge/munged.pid
    if command -v mariadb-admin >/dev/null && mariadb-admin ping >/dev/null 2>&1; then
        /etc/init.d/mariadb stop >/dev/null || true
    fi
    local version
    version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1)
    if [ -n "$version" ] && pg_lsclusters -h 2>/dev/null | grep -q "^$version main .* online"; then
        pg_ctlcluster "$version" main stop || true
    fi
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo; echo "study database: $STUDY_URL" ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
