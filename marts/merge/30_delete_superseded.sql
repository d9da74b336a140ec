-- Replace a mart row only with a version that is newer, or equal by cursor with a later offset.
DELETE FROM __mart__
USING batch_latest AS b
WHERE KEY_MATCH(__mart__, b)
  AND (b.__cursor__ > __mart__.__cursor__
       OR (b.__cursor__ = __mart__.__cursor__ AND b._kafka_offset >= __mart__._kafka_offset))
