-- Raw rows ingested before the cutoff whose batch is merged into the mart. The old job trimmed by
-- the business timestamp and so could never trim orders (add_time never moves); ingestion time
-- works for every table. Rows of a batch still waiting for `marts run` stay, whatever their age.
DELETE FROM __raw__
WHERE _ingested_at < :cutoff
  AND _batch_id IN (SELECT l.batch_id FROM __ledger__ AS l WHERE l.merged_at IS NOT NULL)
