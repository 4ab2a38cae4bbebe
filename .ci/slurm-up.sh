#!/usr/bin/env bash
# A single-node Slurm (with accounting) on this machine, for tests/test_slurm.py: Debian's packages, daemons
# started by hand (CI machines have no systemd), controller and node pinned to 127.0.0.1.
#
#   .ci/slurm-up.sh [start]   install what is missing, write the configs, start the daemons (a no-op when running)
#   .ci/slurm-up.sh status    exit 0 when Slurm answers and its node is up
#   .ci/slurm-up.sh stop      stop the daemons this script started, by pid (nothing else)
#
# Accounting (slurmdbd + mariadb) is not optional: without sacct, submitit cannot learn that a job died
# without a result (time limit, out of memory, scancel) and vfbench could not record it.
# Runs as root. Files live under $VFBENCH_SLURM_DIR (default /var/tmp/vfbench-slurm); the pids of the
# daemons it started are in $VFBENCH_SLURM_DIR/pids.
set -euo pipefail

DIR=${VFBENCH_SLURM_DIR:-/var/tmp/vfbench-slurm}
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by vfbench .ci/slurm-up.sh"
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"

log() { echo "slurm-up: $*" >&2; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...
    local limit=$1 what=$2; shift 2
    for _ in $(seq $((limit * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    log "$what did not come up within ${limit}s; logs in $DIR"
    tail -n 20 "$DIR"/*.log >&2 2>/dev/null || true
    return 1
}

is_up() {
    local state
    command -v sinfo >/dev/null || return 1
    # Our own single-node Slurm without its controller: down (sinfo would retry for seconds to say so).
    if grep -qF "$MARK" "$CONF" 2>/dev/null && ! pgrep -x slurmctld >/dev/null; then return 1; fi
    state=$(timeout 10 sinfo -h -N -o '%t' 2>/dev/null | head -n 1) || return 1
    [[ $state == idle* || $state == mix* || $state == alloc* ]] && timeout 10 sacct -n -X -S now >/dev/null 2>&1
}

remember() { echo "$1 $2" >>"$DIR/pids"; }  # name pid

pid_from() {  # a daemon's pid file, once it has written it
    wait_for 20 "$1 (pid file $2)" test -s "$2"
    cat "$2"
}

install_packages() {
    local missing=()
    for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No man pages to index on a CI machine (the man-db trigger costs seconds).
    echo "man-db man-db/auto-update boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1 || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1
    } || { tail -n 20 "$DIR/apt.log" >&2; return 1; }
}

write_configs() {
    local host cpus mem
    host=$(hostname -s)
    getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        log "$CONF exists and was not written by this script; not touching it"
        return 1
    fi
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n 1)
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
    mem=$((mem * 8 / 10))  # below what slurmd -C reports, or the node is drained as "low RealMemory"
    mkdir -p "$DIR/state" "$DIR/spool"
    chown slurm:slurm "$DIR" "$DIR/state"
    cat >"$CONF" <<EOF
$MARK
ClusterName=vfbench
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
# A job over its time limit is signalled at once and killed 2 s later (tests plant a time-limit overrun).
OverTimeLimit=0
KillWait=2
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$DIR/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
EOF
    chown slurm:slurm "$DBD_CONF"
    chmod 600 "$DBD_CONF"  # slurmdbd refuses a config others can read (it holds the database password)
}

start() {
    local t0=$SECONDS
    mkdir -p "$DIR"
    if is_up; then log "already running"; return 0; fi
    install_packages
    write_configs
    # Forget daemons of an earlier start that are gone (their pids may be reused by anything).
    touch "$DIR/pids"
    while read -r name pid; do kill -0 "$pid" 2>/dev/null && echo "$name $pid"; done <"$DIR/pids" >"$DIR/pids.alive" || true
    mv "$DIR/pids.alive" "$DIR/pids"

    if ! pgrep -x munged >/dev/null; then
        [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; }
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
        mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
        rm -f /run/munge/munged.pid
        runuser -u munge -- munged
        remember munged "$(pid_from munged /run/munge/munged.pid)"
    fi
    wait_for 10 munge bash -c 'munge -n | unmunge'

    if ! mariadb-admin ping >/dev/null 2>&1; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        mariadbd --user=mysql --skip-networking=0 --bind-address=127.0.0.1 \
            >"$DIR/mariadbd.log" 2>&1 </dev/null &
        remember mariadbd $!
        wait_for 30 mariadb mariadb-admin ping
    fi
    mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

    rm -f "$DIR"/slurmdbd.pid "$DIR"/slurmctld.pid "$DIR"/slurmd.pid
    slurmdbd
    remember slurmdbd "$(pid_from slurmdbd "$DIR/slurmdbd.pid")"
    wait_for 30 slurmdbd bash -c 'sacctmgr -n list cluster'
    # Register the cluster before the controller starts, so accounting takes its first jobs.
    sacctmgr -i add cluster vfbench >/dev/null 2>&1 || true
    slurmctld
    remember slurmctld "$(pid_from slurmctld "$DIR/slurmctld.pid")"
    slurmd
    remember slurmd "$(pid_from slurmd "$DIR/slurmd.pid")"
    wait_for 30 "slurm node" is_up
    log "running ($((SECONDS - t0)) s; pids in $DIR/pids; stop with: $0 stop)"
}

stop() {
    [ -s "$DIR/pids" ] || { log "nothing started by this script"; return 0; }
    # Reverse order of starting: node, controller, accounting, database, munge.
    tac "$DIR/pids" | while read -r name pid; do
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
            log "stopped $name ($pid)"
        fi
    done
    rm -f "$DIR/pids"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) is_up ;;
    *) echo "usage: $0 [start|status|stop]" >&2; exit 2 ;;
esac
