-- Merchants: the shops that take payments through ScanPay. Orders, API keys, users and
-- webhooks all belong to exactly one merchant, and every query is scoped by merchant_id.
-- Conventions for every table (both engines): ids are TEXT with a type prefix, money is
-- BIGINT minor units (fen), times are BIGINT milliseconds since the Unix epoch, UTC.
CREATE TABLE merchants (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    created_at  BIGINT  NOT NULL
);
