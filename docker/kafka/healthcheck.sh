#!/bin/bash
# Healthy once this run of the broker logged that it started (remembered in a marker, as the log
# rolls) and its first listener accepts connections. A JVM client per check would cost more CPU
# than the idle broker.
marker=/opt/kafka/config/started
if [ ! -f "$marker" ]; then
  grep -q 'Kafka Server started' /opt/kafka/config/server.log 2>/dev/null || exit 1
  touch "$marker"
fi
port=$(sed -n 's/^listeners=[^,]*:\([0-9]*\).*/\1/p' /opt/kafka/config/server.properties)
exec 3<>"/dev/tcp/127.0.0.1/${port:-9092}"
