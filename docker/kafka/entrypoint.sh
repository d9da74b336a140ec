#!/bin/bash
# Starts one KRaft node configured the way apache/kafka's image is: each KAFKA_* variable is a
# server property (KAFKA_NODE_ID -> node.id; `__` -> `_`, `___` -> `-`), CLUSTER_ID names the
# cluster on first start. The JVM's own variables (KAFKA_HEAP_OPTS, KAFKA_OPTS, ...) are not properties.
set -euo pipefail

props=/opt/kafka/config/server.properties
: > "$props"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_GC_LOG_OPTS|KAFKA_JMX_OPTS|KAFKA_LOG4J_OPTS|KAFKA_VERSION) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${name#KAFKA_}
  key=$(printf '%s' "$key" | tr '[:upper:]' '[:lower:]' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  printf '%s=%s\n' "$key" "$value" >> "$props"
done < <(env)
grep -q '^log.dirs=' "$props" || echo "log.dirs=/var/lib/kafka/data" >> "$props"
logdirs=$(sed -n 's/^log.dirs=//p' "$props")

classpath="/opt/kafka/libs/*"
jvm=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
     -XX:InitiatingHeapOccupancyPercent=35 -Djava.awt.headless=true
     -Dlog4j2.configurationFile=/opt/kafka/bin/log4j2.yaml -Dkafka.logs.dir=/opt/kafka/config ${KAFKA_OPTS:-})

if [ ! -f "${logdirs%%,*}/meta.properties" ]; then
  cluster_id=${CLUSTER_ID:-$(java -cp "$classpath" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)}
  # A static voter set (KAFKA_CONTROLLER_QUORUM_VOTERS) is formatted as is; a dynamic one
  # (controller.quorum.bootstrap.servers) starts as its own standalone controller.
  standalone=(--standalone)
  grep -q '^controller.quorum.voters=' "$props" && standalone=()
  "${jvm[@]}" -cp "$classpath" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" "${standalone[@]}" --ignore-formatted
fi
# The healthcheck reads this run's start from here (the log goes to stdout as well).
rm -f /opt/kafka/config/started; : > /opt/kafka/config/server.log
exec "${jvm[@]}" -cp "$classpath" kafka.Kafka "$props"
