#!/bin/bash
# One Kafka Connect worker in distributed mode, set up as the local stack's (ordertrack/stack/
# connect.py): exactly-once source support, JSON without schemas, the env config provider
# allowed to resolve CDC_MYSQL_PASSWORD only (connector configs name it, never hold it); no file
# provider (a connector config could read any file the worker can).
# Variables as in debezium/connect; any CONNECT_* variable (CONNECT_OFFSET_FLUSH_INTERVAL_MS ->
# offset.flush.interval.ms) is a property too and wins.
set -euo pipefail

props=/opt/connect/config/worker.properties
cat > "$props" <<PROPS
bootstrap.servers=${BOOTSTRAP_SERVERS:?set BOOTSTRAP_SERVERS, the Kafka brokers}
group.id=${GROUP_ID:-ordertrack-connect}
config.storage.topic=${CONFIG_STORAGE_TOPIC:-ordertrack.connect.configs}
offset.storage.topic=${OFFSET_STORAGE_TOPIC:-ordertrack.connect.offsets}
status.storage.topic=${STATUS_STORAGE_TOPIC:-ordertrack.connect.status}
config.storage.replication.factor=${REPLICATION_FACTOR:-1}
offset.storage.replication.factor=${REPLICATION_FACTOR:-1}
status.storage.replication.factor=${REPLICATION_FACTOR:-1}
listeners=http://0.0.0.0:8083
rest.advertised.host.name=${ADVERTISED_HOST_NAME:-$(hostname)}
rest.advertised.port=8083
exactly.once.source.support=enabled
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
plugin.path=/opt/connect/plugins
plugin.discovery=service_load
config.providers=env
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
config.providers.env.param.allowlist.pattern=^(CDC_MYSQL_PASSWORD)$
offset.flush.interval.ms=5000
PROPS
while IFS='=' read -r name value; do
  case "$name" in
    CONNECT_*) ;;
    *) continue ;;
  esac
  key=$(printf '%s' "${name#CONNECT_}" | tr '[:upper:]' '[:lower:]' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  printf '%s=%s\n' "$key" "$value" >> "$props"
done < <(env)

exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  -Dlog4j2.configurationFile=/opt/connect/bin/log4j2.yaml -Dkafka.logs.dir=/opt/connect/config ${KAFKA_OPTS:-} \
  -cp "/opt/connect/libs/*" org.apache.kafka.connect.cli.ConnectDistributed "$props"
