-- Asynchronous callback processing (module 3) and its risk controls.

-- Every notification exactly as it arrived, written before anything else is done with it:
-- the record an operator reaches for when a provider says "we sent it". `body` keeps at most
-- the accepted size (64 KiB); `body_size` is what was received. `outcome` is filled in once
-- processing ends; a row left at `received` was interrupted (a crash) and will be redelivered.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    received_at     BIGINT  NOT NULL,
    remote_addr     TEXT,
    headers         TEXT    NOT NULL DEFAULT '{}',
    body            BLOB    NOT NULL,
    body_size       BIGINT  NOT NULL,
    outcome         TEXT    NOT NULL DEFAULT 'received'
                        CHECK (outcome IN ('received', 'accepted', 'duplicate', 'rejected', 'retry')),
    reason          TEXT,
    notification_id TEXT,
    out_trade_no    TEXT,
    order_id        TEXT,
    processed_at    BIGINT
);
CREATE INDEX notifications_by_order ON notifications (order_id, id);
CREATE INDEX notifications_by_time ON notifications (received_at);

-- Every refusal and every payment that needs a person's eye (late, second payment), with its
-- reason. Events about one of our orders are also in that order's timeline; events naming no
-- order of ours (unknown out_trade_no, unreadable forgeries) are only here.
CREATE TABLE risk_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      BIGINT  NOT NULL,
    kind            TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    channel         TEXT,
    order_id        TEXT,
    out_trade_no    TEXT,
    notification_ref BIGINT REFERENCES notifications (id),
    remote_addr     TEXT
);
CREATE INDEX risk_events_by_time ON risk_events (created_at);
CREATE INDEX risk_events_by_order ON risk_events (order_id, id);

-- WeChat Pay notification nonces seen within the signature window. A second notification
-- with a seen nonce is a replay unless it is byte-identical (same digest of timestamp,
-- nonce, signature and body): an identical copy is answered like the first.
CREATE TABLE notification_nonces (
    channel         TEXT    NOT NULL,
    nonce           TEXT    NOT NULL,
    digest          TEXT    NOT NULL,
    signed_at       BIGINT  NOT NULL,
    PRIMARY KEY (channel, nonce)
);
CREATE INDEX notification_nonces_by_time ON notification_nonces (signed_at);

-- The outbox: one row per merchant-visible change, written in the transaction that makes the
-- change, for the merchant webhook and the live push to deliver. `dedupe_key` (e.g.
-- `order.paid:<order id>`) makes a second copy of the same change impossible.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    dedupe_key      TEXT    NOT NULL UNIQUE,
    merchant_id     TEXT    NOT NULL,
    order_id        TEXT,
    topic           TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX outbox_by_merchant ON outbox (merchant_id, id);

-- The expiry worker claims due orders by moving this lease forward in one conditional
-- UPDATE … RETURNING, so several nodes never close the same order at once.
ALTER TABLE orders ADD COLUMN expiry_claimed_until BIGINT;
