-- Tracking state whose update_time is not the pathTime of the order's newest scan event (in the
-- scan-event mart or its history). Recent rows are not judged: the tracking row and its scan
-- events travel on different topics and may land minutes apart.
SELECT t.order_id,
       'tracking update_time ' || CAST(t.update_time AS VARCHAR) || ' <> newest pathTime '
         || CAST(s.newest_path_time AS VARCHAR) AS notes
FROM __tracking__ AS t
JOIN (
  SELECT e.order_id, MAX(e."pathTime") AS newest_path_time
  FROM __scan_events__ AS e
  GROUP BY e.order_id
) AS s ON s.order_id = t.order_id
WHERE t.update_time <> s.newest_path_time
  AND t.update_time < :settled_before
  AND s.newest_path_time < :settled_before
