#!/usr/bin/env bash
# Smoke test of the Debian package on this machine, as root (docs/install.md):
#   sudo scripts/package-smoke.sh [build/conveyor_<version>_<arch>.deb]
# apt installs the .deb (make package builds it), checks the user and directories postinst
# makes, starts the broker without systemd as `conveyor server --config
# /etc/conveyor/conveyor.conf` under the user conveyor (on a free port: --port overrides the
# file), PINGs and enqueues with redis-cli, stops it with SIGTERM, then removes the package
# (data and config stay) and purges it (user, data and config go), checking each step.
# Refuses to run where a conveyor package or user already exists: purge would delete them.
set -euo pipefail

fail() { echo "package-smoke: FAILED: $*" >&2; exit 1; }
step() { echo "package-smoke: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (apt install, useradd)"
deb="${1:-$(ls build/conveyor_*.deb 2>/dev/null | tail -1)}"
[ -f "$deb" ] || fail "no package: run make package, or name the .deb"
deb="$(readlink -f "$deb")"
if dpkg-query -W -f='${Status}' conveyor 2>/dev/null | grep -q installed; then
    fail "a conveyor package is installed already"
fi
getent passwd conveyor >/dev/null && fail "a user conveyor exists already"
[ -e /var/lib/conveyor ] && fail "/var/lib/conveyor exists already"

step "installing $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
[ -x /usr/bin/conveyor ] || fail "/usr/bin/conveyor missing"
[ -f /etc/conveyor/conveyor.conf ] || fail "/etc/conveyor/conveyor.conf missing"
[ -f /usr/lib/systemd/system/conveyor.service ] || fail "unit missing"
getent passwd conveyor >/dev/null || fail "postinst made no user conveyor"
[ "$(stat -c %U /var/lib/conveyor)" = conveyor ] || fail "/var/lib/conveyor not owned by conveyor"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
step "starting conveyor server --config /etc/conveyor/conveyor.conf --port $port (user conveyor)"
log=$(mktemp)
(cd /var/lib/conveyor && exec setpriv --reuid=conveyor --regid=conveyor --init-groups /usr/bin/conveyor server \
    --config /etc/conveyor/conveyor.conf --port "$port" --amqp-port 0) >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "server exited"; }
    sleep 0.1
done
[ "$(redis-cli -p "$port" PING)" = PONG ] || { cat "$log"; fail "no PONG"; }
id=$(redis-cli -p "$port" ENQUEUE smoke hello)
[ "$(redis-cli -p "$port" QLEN smoke)" = 1 ] || fail "QLEN smoke is not 1"
ls /var/lib/conveyor/*.log >/dev/null 2>&1 || fail "no log segment in /var/lib/conveyor"
[ "$(stat -c %U /var/lib/conveyor/LOCK)" = conveyor ] || fail "data not written as conveyor"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || { cat "$log"; fail "server exit status $status after SIGTERM"; }
step "served (task $id), stopped cleanly; data dir: $(ls /var/lib/conveyor | tr '\n' ' ')"

step "removing"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq conveyor >/dev/null
[ -e /usr/bin/conveyor ] && fail "/usr/bin/conveyor left after remove"
[ -d /var/lib/conveyor ] || fail "remove deleted the data"
[ -f /etc/conveyor/conveyor.conf ] || fail "remove deleted the conffile"
getent passwd conveyor >/dev/null || fail "remove deleted the user"

step "purging"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq conveyor >/dev/null
[ -e /var/lib/conveyor ] && fail "/var/lib/conveyor left after purge"
[ -e /etc/conveyor ] && fail "/etc/conveyor left after purge"
getent passwd conveyor >/dev/null && fail "user conveyor left after purge"
getent group conveyor >/dev/null && fail "group conveyor left after purge"
dpkg-query -W conveyor >/dev/null 2>&1 && fail "package still known to dpkg"
rm -f "$log"
step "OK"
