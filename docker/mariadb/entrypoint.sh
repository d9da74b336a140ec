#!/bin/bash
# First start on an empty /var/lib/mysql: install the system tables, start the server on its
# socket only, set root's password, create MARIADB_DATABASE, run /docker-entrypoint-initdb.d
# (*.sql into that database, *.sh sourced with ROOT_CLI ready), stop it. Then run mariadbd with the
# arguments given (the image's CMD: binlog ROW for Debezium). Variables as in the official image.
set -euo pipefail
# The pipeline's .env may name its own MYSQL_HOST: the local client must use the socket here.
unset MYSQL_HOST MYSQL_TCP_PORT

root_password=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
database=${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}
socket=/run/mysqld/mysqld.sock

# An initialisation of ours cut short (a kill mid-way) is begun again rather than taken as done.
if [ -f /var/lib/mysql/.initialising ]; then
  echo "initdb: the first start did not finish; initialising again"
  find /var/lib/mysql -mindepth 1 -delete
fi
if [ ! -d /var/lib/mysql/mysql ]; then
  if [ -z "$root_password" ]; then
    echo "error: set MARIADB_ROOT_PASSWORD: the data folder is empty and root needs a password" >&2
    exit 1
  fi
  touch /var/lib/mysql/.initialising
  mariadb-install-db --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=normal >/dev/null
  mariadbd --datadir=/var/lib/mysql --socket="$socket" --skip-networking --skip-log-bin "$@" &
  pid=$!
  for i in $(seq 241); do
    mariadb --socket="$socket" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "error: mariadbd exited during initialisation" >&2; exit 1; }
    [ "$i" -lt 241 ] || { echo "error: mariadbd did not answer within 120s during initialisation" >&2; exit 1; }
    sleep 0.5
  done
  ROOT_CLI=(mariadb --socket="$socket" -uroot)
  "${ROOT_CLI[@]}" <<SQL
DELETE FROM mysql.global_priv WHERE User = '';
ALTER USER 'root'@'localhost' IDENTIFIED BY '${root_password//\'/\'\'}';
FLUSH PRIVILEGES;
SQL
  ROOT_CLI+=(--password="$root_password")
  export MYSQL_PWD=$root_password
  if [ -n "$database" ]; then
    "${ROOT_CLI[@]}" -e "CREATE DATABASE IF NOT EXISTS \`$database\` CHARACTER SET utf8mb4"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "initdb: $f"; "${ROOT_CLI[@]}" ${database:+"$database"} < "$f" ;;
      *.sh)  echo "initdb: $f"; . "$f" ;;
    esac
  done
  "${ROOT_CLI[@]}" -e "SHUTDOWN"
  unset MYSQL_PWD
  wait "$pid" || true
  rm -f /var/lib/mysql/.initialising
fi
exec mariadbd --datadir=/var/lib/mysql --socket="$socket" --port=3306 --bind-address=0.0.0.0 "$@"
