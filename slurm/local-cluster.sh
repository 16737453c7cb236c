#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests of SLURM launching.
#
#   slurm/local-cluster.sh start [STATE_DIR]   # default STATE_DIR: /tmp/pdeop-slurm
#   slurm/local-cluster.sh stop  [STATE_DIR]
#
# Nothing is exported globally and /etc/slurm is never touched: callers point SLURM
# commands (sinfo, sbatch, srun, scontrol, submitit) at the cluster with
#   export SLURM_CONF=$STATE_DIR/slurm.conf
# Needs root (apt-get, munged's key, daemons running as root). Debian's slurm-wlm and
# munge are installed with apt-get when missing.
set -euo pipefail

cmd=${1:-}
STATE_DIR=$(realpath -m "${2:-/tmp/pdeop-slurm}") # absolute: the daemons chdir
CONF=$STATE_DIR/slurm.conf
PIDS=$STATE_DIR/pids
START_TIMEOUT=${START_TIMEOUT:-60}

log() { echo "local-cluster: $*" >&2; }

# True if process $2 runs and is named $1. Not a zombie (a daemon's parent here may be
# an init that never reaps, so kill -0 alone lies) nor a reused PID of another program.
alive() {
    local stat
    stat=$(cat "/proc/$2/stat" 2>/dev/null) || return 1 # "PID (COMM) STATE ..."
    [[ $stat == "$2 ($1) "[!Z]* ]]
}

# True if every daemon recorded in $PIDS is alive (the file holds "name pid" lines).
recorded_alive() {
    [[ -s $PIDS ]] || return 1
    local name pid
    while read -r name pid; do
        alive "$name" "$pid" || return 1
    done <"$PIDS"
}

# Wait up to $3 seconds for daemon $1's pid file $2 to name a live $1; print the PID.
wait_pidfile() {
    local name=$1 file=$2 t=$3 pid
    for ((i = 0; i < t * 10; i++)); do
        if [[ -s $file ]] && pid=$(<"$file") && alive "$name" "$pid"; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

show_logs() {
    local f
    for f in "$STATE_DIR"/slurmctld.log "$STATE_DIR"/slurmd.log; do
        [[ -f $f ]] && { echo "==> $f <=="; tail -n 30 "$f"; } >&2
    done
    return 0
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null; then
        return 0
    fi
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

# Start munged unless one already answers; SLURM authenticates every RPC through it.
start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    local key=/etc/munge/munge.key user=root
    getent passwd munge >/dev/null && user=munge
    if [[ ! -s $key ]]; then
        # Debian's postinst normally creates it; make one if it did not.
        log "creating $key"
        install -d -m 0700 -o "$user" -g "$user" /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$key"
        elif command -v create-munge-key >/dev/null; then
            create-munge-key -f
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
        chown "$user:$user" "$key"
        chmod 0400 "$key"
    fi
    # /run/munge lives on a tmpfs that systemd would normally create.
    install -d -m 0755 -o "$user" -g "$user" /run/munge
    local pidfile=/run/munge/munged.pid
    rm -f "$pidfile"
    if [[ $user == munge ]]; then
        runuser -u munge -- munged
    else
        munged --force # munged refuses root without --force
    fi
    local pid
    pid=$(wait_pidfile munged "$pidfile" 10) || { log "munged did not start"; return 1; }
    echo "munged $pid" >>"$PIDS"
}

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc --all) # --all: not OMP_NUM_THREADS, which a Dask LocalCluster leaves set in its process
    # RealMemory must not exceed what slurmd detects, or the node drains: keep a margin.
    mem_mb=$(awk '/^MemTotal:/ {m = int($2 / 1024); print (m > 2048 ? m - 1024 : int(m * 0.9))}' /proc/meminfo)
    cat >"$CONF" <<EOF
# Written by slurm/local-cluster.sh: a one-node cluster on $host, all state in $STATE_DIR.
ClusterName=pdeop-local
# Everything over loopback: the node's name is the host's, its address 127.0.0.1.
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (unavailable in containers/sandboxes): plain /proc process tracking.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
# A node that restarts comes back by itself; batch jobs may be requeued.
ReturnToService=2
JobRequeue=1
# A requeued job waits cred_expire seconds (default 120) before it may start again, and
# the scheduler wakes by itself only every sched_interval (default 60 s): shorten both.
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=5,bf_interval=5
# Keep finished jobs visible to scontrol/squeue for 5 minutes (no accounting here).
MinJobAge=300
KillWait=5
InactiveLimit=0
# Trust the node line below rather than draining if slurmd detects a different layout.
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
# A job without --mem would otherwise take the whole node's memory and run alone.
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((mem_mb / cpus))
EOF
}

start() {
    mkdir -p "$STATE_DIR"
    if recorded_alive; then
        log "already running from $STATE_DIR"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    [[ $(id -u) == 0 ]] || { log "must run as root"; exit 1; }
    [[ -e $PIDS ]] && stop_daemons # half-dead leftovers of an earlier start
    install_packages
    : >"$PIDS"
    start_munge
    mkdir -p "$STATE_DIR/ctld" "$STATE_DIR/spool"
    write_conf
    export SLURM_CONF=$CONF

    # -c: cold start, no job state from an earlier run of this STATE_DIR.
    slurmctld -c -f "$CONF"
    local pid
    pid=$(wait_pidfile slurmctld "$STATE_DIR/slurmctld.pid" 20) || {
        log "slurmctld did not start"; show_logs; exit 1; }
    echo "slurmctld $pid" >>"$PIDS"
    slurmd -f "$CONF"
    pid=$(wait_pidfile slurmd "$STATE_DIR/slurmd.pid" 20) || {
        log "slurmd did not start"; show_logs; exit 1; }
    echo "slurmd $pid" >>"$PIDS"

    local state=""
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        state=$(sinfo -h -o %t 2>/dev/null || true)
        [[ $state == idle ]] && break
        sleep 0.5
    done
    if [[ $state != idle ]]; then
        log "node not idle after ${START_TIMEOUT}s (state: '${state}'); stop with: $0 stop $STATE_DIR"
        show_logs
        exit 1
    fi
    log "cluster up: $(sinfo -h -o '%P %D %t %c CPUs %m MB')"
    echo "export SLURM_CONF=$CONF"
}

# Cancel all jobs while the daemons still run: a job's slurmstepd outlives slurmd.
cancel_jobs() {
    local ids
    ids=$(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null) || return 0
    [[ -n $ids ]] || return 0
    log "cancelling jobs: $(echo $ids)"
    SLURM_CONF=$CONF scancel $ids || true
    for ((i = 0; i < 150; i++)); do # KillWait=5 s, then SIGKILL
        [[ -z $(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null) ]] && return 0
        sleep 0.1
    done
}

# Session id of process $1 (field 6 of /proc/PID/stat; COMM may contain spaces).
session_of() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r _ _ _ sid _ <<<"${stat##*) }"
    echo "$sid"
}

# Kill slurmstepds left by this cluster (they keep $STATE_DIR/slurmd.log open, e.g. when
# slurmctld was dead and jobs could not be cancelled) and the job processes in their session.
kill_stray_stepds() {
    local d pid sid own sids=" "
    own=$(session_of $$)
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        alive slurmstepd "$pid" || continue
        find "$d/fd" -lname "$STATE_DIR/slurmd.log" 2>/dev/null | grep -q . || continue
        sid=$(session_of "$pid") || continue
        [[ $sid -gt 1 && $sid != "$own" ]] && sids+="$sid "
        log "killing stray slurmstepd ($pid) and its job's processes"
        kill -KILL "$pid" 2>/dev/null || true
    done
    [[ $sids != " " ]] || return 0
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        sid=$(session_of "$pid") || continue
        [[ $sids == *" $sid "* ]] && kill -KILL "$pid" 2>/dev/null || true
    done
}

# Kill exactly the recorded daemons: TERM, then KILL after 10 s.
stop_daemons() {
    [[ -s $PIDS ]] || { rm -f "$PIDS"; return 0; }
    local name pid left
    if alive slurmctld "$(awk '$1 == "slurmctld" {print $2}' "$PIDS")"; then
        cancel_jobs
    fi
    while read -r name pid; do
        if alive "$name" "$pid"; then
            log "stopping $name ($pid)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done <"$PIDS"
    for ((i = 0; i < 100; i++)); do
        left=0
        while read -r name pid; do
            alive "$name" "$pid" && left=1
        done <"$PIDS"
        ((left)) || break
        sleep 0.1
    done
    while read -r name pid; do
        if alive "$name" "$pid"; then
            log "killing $name ($pid)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done <"$PIDS"
    kill_stray_stepds
    rm -f "$PIDS"
}

case $cmd in
start) start ;;
stop) stop_daemons ;;
*)
    echo "usage: $0 {start|stop} [STATE_DIR]   (default STATE_DIR: /tmp/pdeop-slurm)" >&2
    exit 2
    ;;
esac
