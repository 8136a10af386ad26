#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of `run --launcher slurm` and for
# trying the launcher without a cluster: munged, slurmctld and slurmd, all files (config,
# key, sockets, state, logs) in one directory, nothing written to /etc.
#
#   tools/slurm-localhost.sh start     # idempotent: a running cluster of this directory is kept
#   tools/slurm-localhost.sh status    # exit 0 when the node takes jobs
#   tools/slurm-localhost.sh stop
#   tools/slurm-localhost.sh env       # the line to eval: export SLURM_CONF=...
#
# Needs Debian's slurmctld, slurmd, slurm-client and munge packages (Slurm 22.05 on Debian
# 12) and root (the daemons run as the calling user; slurmd needs root to start jobs as
# their owner). Settings: UAD_SLURM_DIR (default /tmp/uad-bench-slurm), UAD_SLURM_PORT
# (slurmctld's port, default 6817; slurmd uses the next one). No accounting database:
# `sacct` is unavailable here, so job states come from `squeue` (which keeps finished jobs
# for MinJobAge seconds); a real cluster's sacct is used where it answers.
set -euo pipefail

DIR=${UAD_SLURM_DIR:-/tmp/uad-bench-slurm}
PORT=${UAD_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

die() { echo "slurm-localhost: $*" >&2; exit 1; }

node_ready() {
  # the node answers and is idle, mixed or allocated (not down/drained/unknown)
  local state
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1) || return 1
  case "$state" in idle*|mixed*|allocated*|completing*) return 0 ;; *) return 1 ;; esac
}

alive() {  # alive PIDFILE
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

write_config() {
  local host cpus mem user
  host=$(hostname -s)
  cpus=$(nproc)
  # MiB, leaving some for the system; Slurm refuses a node reporting less than configured
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  user=$(id -un)
  mkdir -p "$DIR"/{state,spool,log}
  chmod 700 "$DIR"
  cat > "$CONF" <<EOF
# written by tools/slurm-localhost.sh
ClusterName=uadbench
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups in a container: processes are tracked by their parent pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
# finished jobs stay visible to squeue for 10 minutes (there is no sacct here)
MinJobAge=600
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  for cmd in munged slurmctld slurmd sinfo sbatch srun squeue; do
    command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install slurmctld slurmd slurm-client munge)"
  done
  if [ -f "$CONF" ] && alive "$DIR/munged.pid" && alive "$DIR/slurmctld.pid" \
     && alive "$DIR/slurmd.pid" && node_ready; then
    echo "slurm-localhost: already running ($CONF)"
    return 0
  fi
  stop >/dev/null 2>&1 || true
  write_config
  if [ ! -s "$DIR/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge.key"
  fi
  munged --force --key-file="$DIR/munge.key" --socket="$DIR/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munged.seed" || die "munged did not start (see $DIR/log/munged.log)"
  # -i: ignore saved state (a fresh controller each start; jobs of a former run are gone)
  slurmctld -f "$CONF" -i || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
  slurmd -f "$CONF" || die "slurmd did not start (see $DIR/log/slurmd.log)"
  for _ in $(seq 1 60); do
    if node_ready; then
      echo "slurm-localhost: running, node $(hostname -s) with $(nproc) CPUs; export SLURM_CONF=$CONF"
      return 0
    fi
    # a node that registered DOWN (e.g. after an unclean stop) is brought back
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  tail -n 5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  die "the node did not become ready in 60 s"
}

stop() {
  for daemon in slurmd slurmctld munged; do
    local pidfile=$DIR/$daemon.pid
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      for _ in $(seq 1 50); do alive "$pidfile" || break; sleep 0.2; done
      alive "$pidfile" && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  echo "slurm-localhost: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) [ -f "$CONF" ] && node_ready && echo "slurm-localhost: ready ($CONF)" ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
