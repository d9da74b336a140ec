#!/bin/bash
# Healthy when the first start's initialisation is over, the server listens on TCP 3306 (read
# from /proc: a probe connection would log an aborted connection every check) and answers a
# query over its socket (the container's user logs in by its OS identity).
[ -f /var/lib/mysql/.initialising ] && exit 1
awk '$4 == "0A" && $2 ~ /:0CEA$/ { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || exit 1
exec mariadb --protocol=socket -e "SELECT 1" >/dev/null
