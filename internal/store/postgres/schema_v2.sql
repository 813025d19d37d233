-- Schema version 2: data-plane nodes, and the node an operation must run on.

ALTER TABLE operations ADD COLUMN node text COLLATE "C" NOT NULL DEFAULT '';

-- Nodes are not resources: heartbeats take no revision, no writers' lock and are not on the
-- change feed.
CREATE TABLE nodes (
	name      text COLLATE "C" PRIMARY KEY,
	zone      text NOT NULL,
	network   text NOT NULL,
	endpoint  text NOT NULL,
	applied   bigint NOT NULL,
	started   timestamptz NOT NULL,
	heartbeat timestamptz NOT NULL,
	expires   timestamptz NOT NULL
);
