# Sourced once by the MariaDB image's first start (docker/mariadb's or the official mariadb
# image's), after the schema file ran: the pipeline's three accounts with least privilege, the
# grants of ordertrack/stack/mariadb.py (tests/docker compares them). The official image has
# already made MYSQL_USER an owner of MYSQL_DATABASE: that is revoked.

shopt -u patsub_replacement 2>/dev/null || true  # `&` in a replacement is literal text

ordertrack_sql() {
  if [ -n "${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}" ]; then  # the official image
    MYSQL_PWD=${MARIADB_ROOT_PASSWORD:-$MYSQL_ROOT_PASSWORD} mariadb --protocol=socket -uroot
  else  # docker/mariadb: the container's user logs in by its OS identity
    mariadb --protocol=socket
  fi
}
ordertrack_literal() {  # a string literal: backslashes and quotes escaped (MariaDB reads \ as an escape)
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\'\'}"
}
ordertrack_account() {  # user, password, grants (`;`-separated, {user} for the account)
  local account password
  account="$(ordertrack_literal "$1")@'%'"
  password=$(ordertrack_literal "$2")
  {
    echo "CREATE USER IF NOT EXISTS $account IDENTIFIED BY $password;"
    echo "ALTER USER $account IDENTIFIED BY $password;"
    echo "REVOKE ALL PRIVILEGES, GRANT OPTION FROM $account;"
    echo "${3//\{user\}/$account};"
  } | ordertrack_sql
}

PIPELINE_GRANTS='GRANT SELECT ON `kuaisong`.* TO {user};GRANT PROCESS, SLAVE MONITOR ON *.* TO {user}'
WORKLOAD_GRANTS='GRANT SELECT, INSERT, UPDATE, DELETE ON `kuaisong`.* TO {user}'
CDC_GRANTS='GRANT SELECT ON `kuaisong`.* TO {user};GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {user}'

ordertrack_account "${MYSQL_USER:-ordertrack}" "${MYSQL_PASSWORD:?set MYSQL_PASSWORD}" "$PIPELINE_GRANTS"
ordertrack_account "${WORKLOAD_MYSQL_USER:-kuaisong_app}" "${WORKLOAD_MYSQL_PASSWORD:?set WORKLOAD_MYSQL_PASSWORD}" "$WORKLOAD_GRANTS"
ordertrack_account "${CONNECT_MYSQL_USER:-ordertrack_cdc}" "${CDC_MYSQL_PASSWORD:?set CDC_MYSQL_PASSWORD}" "$CDC_GRANTS"
echo "FLUSH PRIVILEGES;" | ordertrack_sql
