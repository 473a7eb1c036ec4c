-- Rate limits shared by the nodes of a cluster (`limits.rs`): one row per limited key (an API
-- key, a sign-in email or address) holding GCRA's theoretical arrival time of its next
-- request, in Unix milliseconds. A row whose time has passed means the same as no row, so
-- housekeeping deletes those. Used on PostgreSQL; a SQLite deployment is one node and keeps
-- its limits in memory.
CREATE TABLE rate_limits (
    key             TEXT    PRIMARY KEY,
    tat             BIGINT  NOT NULL
);
CREATE INDEX rate_limits_by_time ON rate_limits (tat);
