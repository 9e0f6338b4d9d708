#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine (slurmctld + slurmd + munge from Debian's
# packages), for tests/test_slurm.py and for trying `tuneserve slurm submit` without a cluster.
#
#   sudo deploy/slurm/local-cluster.sh          # install if missing, configure, start; idempotent
#   sudo deploy/slurm/local-cluster.sh stop     # stop the daemons this script started
#
# Choices, for a throwaway box (a container, a CI runner) rather than a production cluster:
#   - no systemd: the daemons are started directly and daemonize themselves;
#   - proctrack/linuxproc and task/none: no cgroups needed (containers rarely delegate them);
#   - no accounting database (accounting_storage/none): squeue/scancel are all the tests use;
#   - CPUs from nproc, and OverSubscribe=FORCE:4 so a 2-core box still runs 3-4 tiny CPU workers
#     at once (the tests' trials sleep; they do not compute);
#   - MinJobAge=5 so finished jobs leave squeue quickly; KillWait=5 (SIGTERM -> SIGKILL) and
#     OverTimeLimit=0 so a time limit is exact and the tests stay short.
# Exits non-zero with a message on stderr when Slurm cannot be installed or does not come up.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd

if [ "${1:-}" = stop ]; then
  for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "local-cluster.sh: must run as root (it installs packages and starts daemons)" >&2
  exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } || {
    echo "local-cluster.sh: apt-get install slurm-wlm munge failed" >&2
    exit 2
  }
fi

HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory in MB, a little under what the kernel reports so slurmd does not drain the node.
MEM=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE" "$SPOOL"

NEW_CONF=$(cat <<CONF
# Written by deploy/slurm/local-cluster.sh for $HOST: a one-node test cluster.
ClusterName=tuneserve-local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=$SPOOL
StateSaveLocation=$STATE
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=5
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
)

changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEW_CONF" ]; then
  printf '%s\n' "$NEW_CONF" > "$CONF"
  changed=1
fi
# Debian's slurm packages read /etc/slurm; older layouts read /etc/slurm-llnl.
[ -e /etc/slurm-llnl ] || ln -s "$CONF_DIR" /etc/slurm-llnl 2>/dev/null || true

# munge: the package creates /etc/munge/munge.key; make one if it did not.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then mungekey --create --force; else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force 2>/dev/null || /usr/sbin/munged --force
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ $changed = 1 ]; then  # a new configuration: restart what runs
  for pidfile in /run/slurmctld.pid /run/slurmd.pid; do
    if running "$pidfile"; then kill "$(cat "$pidfile")"; for _ in $(seq 20); do running "$pidfile" || break; sleep 0.5; done; fi
  done
fi
running /run/slurmctld.pid || slurmctld
running /run/slurmd.pid || slurmd

for _ in $(seq 60); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  case "$state" in
    idle*|mixed*|allocated*) echo "slurm: node $HOST $state, $CPUS CPUs"; exit 0 ;;
    down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "local-cluster.sh: the node did not come up (sinfo: ${state:-no answer}); see $LOG_DIR" >&2
exit 3
