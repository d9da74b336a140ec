-- A newer version of an archived row makes the history row stale: it is removed (once per
-- history table; the runner runs this file for each one found in the catalog). So does a delete.
DELETE FROM __hist__
USING batch_latest AS b
WHERE KEY_MATCH(__hist__, b)
  AND NEWER(b, __hist__)
