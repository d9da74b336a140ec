-- History rows older than raw's newest version of their key: they leave history and the newer
-- version enters the mart.
SELECT COUNT(*)
FROM batch_latest AS b
JOIN __history__ AS h ON KEY_MATCH(h, b)
WHERE NEWER(b, h)
