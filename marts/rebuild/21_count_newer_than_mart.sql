-- Mart rows older than raw's newest version of their key: the rows the rebuild changes (a
-- delete, with binlog CDC, removes them). Same-message rows are rewritten identically, not counted.
SELECT COUNT(*)
FROM batch_latest AS b
JOIN __mart__ AS m ON KEY_MATCH(m, b)
WHERE NEWER(b, m)
