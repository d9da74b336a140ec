#!/bin/bash
# First start on an empty /var/lib/mysql: install the system tables, start a server on its socket
# only (no network, no binlog), create MARIADB_DATABASE, run /docker-entrypoint-initdb.d (*.sql
# into that database, *.sh sourced), stop it. Then run mariadbd with the arguments given (the
# image's CMD: binlog ROW for Debezium).
#
# The administrator has no password: `root` and `mysql` (this container's user) log in over the
# socket by their OS identity (unix_socket), as on the local stack. MARIADB_ROOT_PASSWORD, if set,
# is ignored; the official image's variables otherwise mean the same here.
set -euo pipefail
# The pipeline's env may name its own MYSQL_HOST: the local client must use the socket here.
unset MYSQL_HOST MYSQL_TCP_PORT MYSQL_PWD

database=${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}
socket=/run/mysqld/mysqld.sock

# An initialisation of ours cut short (a kill mid-way) is begun again rather than taken as done.
if [ -f /var/lib/mysql/.initialising ]; then
  echo "initdb: the first start did not finish; initialising again"
  find /var/lib/mysql -mindepth 1 -delete
fi
if [ ! -d /var/lib/mysql/mysql ]; then
  touch /var/lib/mysql/.initialising
  # root and this container's user `mysql` (the second account) log in by their OS identity.
  mariadb-install-db --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=socket \
    --auth-root-socket-user=mysql >/dev/null
  # The schema and the accounts (with their passwords) stay out of the binlog Debezium reads.
  init_args=()
  for a in "$@"; do
    case "$a" in --log-bin*|--log_bin*) ;; *) init_args+=("$a") ;; esac
  done
  mariadbd --datadir=/var/lib/mysql --socket="$socket" --skip-networking --skip-log-bin "${init_args[@]}" &
  pid=$!
  for i in $(seq 241); do
    mariadb --socket="$socket" -e "SELECT 1" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "error: mariadbd exited during initialisation" >&2; exit 1; }
    [ "$i" -lt 241 ] || { echo "error: mariadbd did not answer within 120s during initialisation" >&2; exit 1; }
    sleep 0.5
  done
  mariadb --socket="$socket" -e "DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;"
  if [ -n "$database" ]; then
    mariadb --socket="$socket" -e "CREATE DATABASE IF NOT EXISTS \`$database\` CHARACTER SET utf8mb4"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "initdb: $f"; mariadb --socket="$socket" ${database:+"$database"} < "$f" ;;
      *.sh)  echo "initdb: $f"; . "$f" ;;
    esac
  done
  mariadb --socket="$socket" -e "SHUTDOWN"
  wait "$pid" || true
  rm -f /var/lib/mysql/.initialising
fi
exec mariadbd --datadir=/var/lib/mysql --socket="$socket" --port=3306 --bind-address=0.0.0.0 "$@"
