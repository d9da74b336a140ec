-- Remove from the mart exactly the rows now in history.
DELETE FROM __mart__
USING __hist__ AS h
WHERE KEY_MATCH(__mart__, h)
  AND h.__cursor__ = __mart__.__cursor__ AND h._kafka_offset = __mart__._kafka_offset
  AND __mart__.__cursor__ >= :period_start AND __mart__.__cursor__ < :period_end AND __mart__.__cursor__ < :cutoff
