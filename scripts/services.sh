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
