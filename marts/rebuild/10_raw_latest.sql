-- `marts rebuild`: the latest version of each key over every raw row, as if all of raw were one
-- batch (rows without a batch id included: restored from a snapshot, loaded by hand). The same
-- order as 10_batch_latest.sql, so the merge files after it keep their meaning.
CREATE TEMP TABLE batch_latest AS
SELECT r.*
FROM __raw__ AS r
QUALIFY ROW_NUMBER() OVER (PARTITION BY __key__ ORDER BY NEWEST_FIRST(r)) = 1
