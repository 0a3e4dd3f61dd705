#!/usr/bin/env bash
# Make sure the servers the tests talk to are up: PostgreSQL on 127.0.0.1:5432
# (user postgres, trust) and MariaDB on 127.0.0.1:3306 (root, no password).
# Installs them from Debian's packages when missing, starts them when stopped,
# and waits until they answer. Idempotent; safe to run before every test run.
set -euo pipefail

say() { printf '   %s\n' "$*"; }
wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "error: $name did not come up within 60 s" >&2; return 1
}

# PostgreSQL
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  say "installing PostgreSQL (Debian package)"
  apt-get install -y -q postgresql >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi
say "PostgreSQL: $(psql -h 127.0.0.1 -U postgres -Atc 'select version()' | cut -d' ' -f1-2)"

# MariaDB
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  say "installing MariaDB (Debian package)"
  apt-get install -y -q mariadb-server >/dev/null
fi
if ! mysqladmin -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; then
  say "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mysqladmin -h 127.0.0.1 -P 3306 -uroot ping
fi
say "MariaDB: $(mysql -h 127.0.0.1 -uroot -N -e 'select version()')"
