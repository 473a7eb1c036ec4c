-- Each merchant's own provider account (#17): the money of a merchant's orders goes to its
-- own Alipay app / WeChat Pay merchant number, never to a pooled one. `ids` holds what is not
-- secret (gateway, app id, seller id / mchid, certificate serial, key id) as JSON, shown on
-- the board and used for routing; `sealed` holds the keys (private key, the provider's public
-- key, the APIv3 key) encrypted with AES-256-GCM under the operator's master key `key_id`
-- (base64 of nonce ‖ ciphertext, the merchant and channel as associated data).
CREATE TABLE provider_accounts (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    channel     TEXT NOT NULL,
    ids         TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    checked_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, channel)
);

-- The account an attempt was made through: NULL for the operator's own (the global
-- settings), else the merchant whose account it is. Query, close, refund and the
-- notification's verification all use the attempt's account.
ALTER TABLE payment_attempts ADD COLUMN account TEXT;
