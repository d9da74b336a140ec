-- A check's findings (its query as __findings__: order_id, notes), evaluated once for the
-- bookkeeping that follows in the same transaction; dropped at its end.
CREATE TEMP TABLE dq_findings AS
SELECT f.order_id, f.notes FROM __findings__ AS f
