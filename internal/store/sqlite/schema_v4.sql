-- Schema version 4: data-plane nodes, and the node an operation must run on.

ALTER TABLE operations ADD COLUMN node TEXT NOT NULL DEFAULT '';

-- Nodes are not resources: heartbeats take no revision and are not on the change feed.
CREATE TABLE nodes (
	name      TEXT PRIMARY KEY,
	zone      TEXT NOT NULL,
	network   TEXT NOT NULL,
	endpoint  TEXT NOT NULL,
	applied   INTEGER NOT NULL,
	started   TEXT NOT NULL,
	heartbeat TEXT NOT NULL,
	expires   TEXT NOT NULL
);
