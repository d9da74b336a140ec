-- The three kuaisong source tables, as production has them: unix-second cursors, an index on
-- each cursor column (with the tie-breaker, so keyset pages are index range scans).

CREATE TABLE IF NOT EXISTS ecs_order_info (
  order_id        BIGINT UNSIGNED  NOT NULL,
  order_sn        VARCHAR(32)      NOT NULL,
  partner_id      INT UNSIGNED     NOT NULL,
  user_id         BIGINT UNSIGNED  NOT NULL,
  order_status    TINYINT UNSIGNED NOT NULL DEFAULT 0,
  shipping_status TINYINT UNSIGNED NOT NULL DEFAULT 0,
  pay_status      TINYINT UNSIGNED NOT NULL DEFAULT 0,
  consignee       VARCHAR(64)      NOT NULL DEFAULT '',
  country         CHAR(2)          NOT NULL DEFAULT '',
  province        VARCHAR(64)      NOT NULL DEFAULT '',
  city            VARCHAR(64)      NOT NULL DEFAULT '',
  district        VARCHAR(64)      NOT NULL DEFAULT '',
  address         VARCHAR(255)     NOT NULL DEFAULT '',
  zipcode         VARCHAR(16)      NOT NULL DEFAULT '',
  mobile          VARCHAR(32)      NOT NULL DEFAULT '',
  shipping_id     SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  shipping_name   VARCHAR(64)      NOT NULL DEFAULT '',
  goods_amount    DECIMAL(12,2)    NOT NULL DEFAULT 0,
  shipping_fee    DECIMAL(10,2)    NOT NULL DEFAULT 0,
  order_amount    DECIMAL(12,2)    NOT NULL DEFAULT 0,
  weight_kg       DECIMAL(10,3)    NOT NULL DEFAULT 0,
  add_time        INT UNSIGNED     NOT NULL,
  PRIMARY KEY (order_id),
  UNIQUE KEY uk_order_sn (order_sn),
  KEY idx_add_time (add_time, order_id),
  KEY idx_partner_add_time (partner_id, add_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS uni_tracking_info (
  order_id            BIGINT UNSIGNED  NOT NULL,
  tracking_number     VARCHAR(40)      NOT NULL,
  carrier_code        VARCHAR(16)      NOT NULL,
  state               TINYINT UNSIGNED NOT NULL DEFAULT 0,
  sub_state           VARCHAR(32)      NOT NULL DEFAULT '',
  last_event_code     VARCHAR(32)      NOT NULL DEFAULT '',
  last_location       VARCHAR(128)     NOT NULL DEFAULT '',
  origin_country      CHAR(2)          NOT NULL DEFAULT '',
  destination_country CHAR(2)          NOT NULL DEFAULT '',
  scan_count          SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  add_time            INT UNSIGNED     NOT NULL,
  update_time         INT UNSIGNED     NOT NULL,
  PRIMARY KEY (order_id),
  UNIQUE KEY uk_tracking_number (tracking_number),
  KEY idx_update_time (update_time, order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS uni_tracking_spath (
  id          BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  order_id    BIGINT UNSIGNED  NOT NULL,
  traceSeq    INT UNSIGNED     NOT NULL,
  pathTime    INT UNSIGNED     NOT NULL,
  event_code  VARCHAR(32)      NOT NULL,
  event_desc  VARCHAR(255)     NOT NULL DEFAULT '',
  location    VARCHAR(128)     NOT NULL DEFAULT '',
  facility    VARCHAR(64)      NOT NULL DEFAULT '',
  operator    VARCHAR(64)      NOT NULL DEFAULT '',
  add_time    INT UNSIGNED     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_order_trace (order_id, traceSeq),
  KEY idx_path_time (pathTime, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
