-- Cluster mode: the node registry, which node ran each payment flow, the nonces of internal
-- calls, and board users who may see the cluster.

-- One row per node, rewritten by its heartbeat every second with its load. A row older than
-- the TTL (5 s by default) is out; a node leaving cleanly deletes its own. Ratios are stored
-- in parts per million and latency in microseconds, so no floating point is stored.
CREATE TABLE nodes (
    id              TEXT    PRIMARY KEY,
    url             TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('starting', 'ready', 'draining')),
    started_at      BIGINT  NOT NULL,
    heartbeat_at    BIGINT  NOT NULL,
    in_flight       BIGINT  NOT NULL DEFAULT 0,
    latency_us      BIGINT  NOT NULL DEFAULT 0,
    error_ppm       BIGINT  NOT NULL DEFAULT 0,
    cpu_ppm         BIGINT  NOT NULL DEFAULT 0,
    pool_ppm        BIGINT  NOT NULL DEFAULT 0,
    flows_total     BIGINT  NOT NULL DEFAULT 0
);

-- The node whose prepay call opened an attempt (the share each node took).
ALTER TABLE payment_attempts ADD COLUMN node_id TEXT;
CREATE INDEX payment_attempts_by_time ON payment_attempts (created_at);

-- Nonces of signed internal calls, shared by every node so a call replayed to another node is
-- refused too; forgotten after two minutes (the signature window is ±30 s).
CREATE TABLE internal_nonces (
    nonce           TEXT    PRIMARY KEY,
    seen_at         BIGINT  NOT NULL
);
CREATE INDEX internal_nonces_by_time ON internal_nonces (seen_at);

-- Board users who may see the cluster page (operators).
ALTER TABLE users ADD COLUMN admin BIGINT NOT NULL DEFAULT 0;
