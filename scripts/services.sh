# Services for the reading tests (source it: `. scripts/services.sh`). As root on Debian it
# installs what is missing (PostgreSQL server, Debian's Chromium for the Playwright tests,
# nginx + openssl for the HTTPS reverse-proxy test), initialises a throwaway PostgreSQL cluster under /tmp owned by the postgres user, starts it
# on a unix socket only, and exports WEEKE_TEST_POSTGRES_URL. Elsewhere it changes nothing and
# the PostgreSQL/browser tests skip. Idempotent: a running cluster is reused.
# nginx is not started as a system service: the HTTPS test runs its own unprivileged nginx
# (config, certificate, pid and temp files in a throwaway folder under /tmp) on the loopback;
# WEEKE_TEST_NGINX names the binary (the test skips without it).
_weeke_services() {
  local need=()
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    [ -x /usr/sbin/nginx ] || need+=(nginx)
    command -v openssl >/dev/null || need+=(openssl)
    if [ "${#need[@]}" -gt 0 ]; then
      echo "services.sh: apt-get install ${need[*]}" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null || {
        echo "services.sh: could not install ${need[*]}" >&2; return 0; }
    fi
  fi
  if [ -x /usr/sbin/nginx ]; then
    export WEEKE_TEST_NGINX=/usr/sbin/nginx
    echo "services.sh: nginx ready for the HTTPS proxy test ($WEEKE_TEST_NGINX)" >&2
  else
    echo "services.sh: no nginx (needs root on Debian): the HTTPS proxy test will skip" >&2
  fi
  local bin; bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$bin" ] || [ "$(id -u)" != 0 ] || ! id postgres >/dev/null 2>&1; then
    echo "services.sh: no PostgreSQL (needs root on Debian): PostgreSQL tests will skip" >&2
    return 0
  fi
  local base="${WEEKE_PG_DIR:-/tmp/weeke-pg}"
  local sock="$base/sock"
  mkdir -p "$sock" && chown -R postgres:postgres "$base" && chmod 700 "$base"
  if [ ! -f "$base/data/PG_VERSION" ]; then
    su postgres -s /bin/sh -c "'$bin/initdb' -D '$base/data' -A trust -U postgres --no-sync -E UTF8" >"$base/initdb.log" 2>&1 || {
      echo "services.sh: initdb failed, see $base/initdb.log" >&2; return 0; }
  fi
  if ! su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$base/data' status" >/dev/null 2>&1; then
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$base/data' -l '$base/server.log' -w -t 60 start -o \"-c listen_addresses='' -c unix_socket_directories='$sock' -c fsync=off\"" >/dev/null || {
      echo "services.sh: PostgreSQL did not start, see $base/server.log" >&2; return 0; }
  fi
  export WEEKE_TEST_POSTGRES_URL="postgresql://postgres@/postgres?host=$sock"
  echo "services.sh: PostgreSQL ready ($WEEKE_TEST_POSTGRES_URL)" >&2
}
_weeke_services
unset -f _weeke_services

# A single-node SLURM for the cluster tests (tests/execution/test_slurm.py): as root on Debian it installs
# slurm-wlm and munge when missing and starts munged, slurmctld and slurmd directly (no systemd,
# no cgroups: proctrack/linuxproc, task/none) on the loopback, with every file under
# $WEEKE_SLURM_DIR (default /tmp/weeke-slurm). Exports SLURM_CONF; elsewhere it changes nothing
# and the SLURM tests skip. Idempotent: running daemons are reused.
_weeke_slurm() {
  [ "${WEEKE_NO_SLURM:-}" = 1 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "services.sh: no SLURM (needs root on Debian): SLURM tests will skip" >&2; return 0
  fi
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "services.sh: apt-get install slurm-wlm munge" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slurm-wlm munge >/dev/null; } || {
      echo "services.sh: could not install slurm-wlm munge: SLURM tests will skip" >&2; return 0; }
  fi
  local base="${WEEKE_SLURM_DIR:-/tmp/weeke-slurm}"
  local port="${WEEKE_SLURM_PORT:-6817}"
  local conf="$base/slurm.conf" sock="$base/munge/munge.socket"
  mkdir -p "$base/munge" "$base/state" "$base/spool" "$base/log" && chmod 700 "$base/munge"
  if [ ! -s "$base/munge/munge.key" ]; then
    dd if=/dev/urandom bs=1 count=1024 of="$base/munge/munge.key" 2>/dev/null
    chmod 400 "$base/munge/munge.key"
  fi
  if ! munge -n -S "$sock" 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1; then
    munged --force --socket="$sock" --key-file="$base/munge/munge.key" \
      --pid-file="$base/munge/munged.pid" --log-file="$base/log/munged.log" \
      --seed-file="$base/munge/munged.seed" || {
      echo "services.sh: munged did not start, see $base/log/munged.log" >&2; return 0; }
  fi
  local cpus mem
  cpus="$(nproc)"; mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
  cat >"$conf.new" <<CONF
# written by scripts/services.sh: a single-node test cluster on the loopback
ClusterName=weeke-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool
SlurmctldPidFile=$base/slurmctld.pid
SlurmdPidFile=$base/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=600
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if ! cmp -s "$conf.new" "$conf"; then mv "$conf.new" "$conf"; else rm -f "$conf.new"; fi
  export SLURM_CONF="$conf"
  if ! scontrol ping 2>/dev/null | grep -q UP; then
    slurmctld -f "$conf" -c >>"$base/log/slurmctld.out" 2>&1 || {
      echo "services.sh: slurmctld did not start, see $base/log/" >&2; unset SLURM_CONF; return 0; }
  fi
  if ! pgrep -F "$base/slurmd.pid" slurmd >/dev/null 2>&1; then
    slurmd -f "$conf" -N localhost >>"$base/log/slurmd.out" 2>&1 || {
      echo "services.sh: slurmd did not start, see $base/log/" >&2; unset SLURM_CONF; return 0; }
  fi
  local i
  for i in $(seq 1 30); do
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "services.sh: SLURM ready (SLURM_CONF=$SLURM_CONF)" >&2
  else
    echo "services.sh: SLURM node not idle, see $base/log/: SLURM tests will skip" >&2
    unset SLURM_CONF
  fi
}
_weeke_slurm
unset -f _weeke_slurm
