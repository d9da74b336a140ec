-- A newer version of an archived row makes the history row stale: it is removed (once per
-- history table; the runner runs this file for each one found in the catalog).
DELETE FROM __hist__
USING batch_latest AS b
WHERE KEY_MATCH(__hist__, b)
  AND (b.__cursor__ > __hist__.__cursor__
       OR (b.__cursor__ = __hist__.__cursor__ AND b._kafka_offset > __hist__._kafka_offset))
