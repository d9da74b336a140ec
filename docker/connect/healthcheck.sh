#!/bin/bash
# Healthy when the worker's REST API answers and lists Debezium's MySQL connector plugin.
exec 3<>/dev/tcp/127.0.0.1/8083 || exit 1
printf 'GET /connector-plugins HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
grep -q 'io.debezium.connector.mysql.MySqlConnector' <&3
