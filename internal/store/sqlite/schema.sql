-- Schema version 1. Times are TEXT in UTC, fixed width with nanoseconds
-- ("2006-01-02T15:04:05.000000000Z"), so they compare in time order.

INSERT INTO meta (name, value) VALUES ('revision', 0);

CREATE TABLE resources (
	key      TEXT PRIMARY KEY,  -- lower-cased ARM ID
	id       TEXT NOT NULL,     -- ARM ID as last written
	type     TEXT NOT NULL,
	parent   TEXT NOT NULL,     -- Key of the containing scope
	body     BLOB,
	etag     TEXT NOT NULL,
	revision INTEGER NOT NULL
);
CREATE INDEX resources_parent ON resources (parent, key);
CREATE INDEX resources_type ON resources (type COLLATE NOCASE, key);

CREATE TABLE operations (
	id           TEXT PRIMARY KEY,
	resource_key TEXT NOT NULL,
	resource_id  TEXT NOT NULL,
	kind         TEXT NOT NULL,
	goal         TEXT NOT NULL,
	status       TEXT NOT NULL,
	input        BLOB,
	error        BLOB,
	method       TEXT NOT NULL,
	location     TEXT NOT NULL,
	lease_owner  TEXT NOT NULL,
	lease_until  TEXT NOT NULL,
	attempts     INTEGER NOT NULL,
	created      TEXT NOT NULL,
	updated      TEXT NOT NULL,
	revision     INTEGER NOT NULL
);
-- At most one InProgress operation per resource; also how ActiveOperation finds it.
CREATE UNIQUE INDEX operations_active ON operations (resource_key) WHERE status = 'InProgress';
-- LeaseOperation scans InProgress operations oldest first.
CREATE INDEX operations_lease ON operations (created, id) WHERE status = 'InProgress';

CREATE TABLE events (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	time         TEXT NOT NULL,
	subscription TEXT NOT NULL,
	body         BLOB
);
CREATE INDEX events_subscription ON events (subscription, time, seq);

CREATE TABLE principals (
	object_id TEXT PRIMARY KEY COLLATE NOCASE,
	login     TEXT NOT NULL,          -- as last written
	login_key TEXT NOT NULL UNIQUE,   -- lower-cased login
	body      BLOB
);

CREATE TABLE changes (
	revision INTEGER NOT NULL,
	key      TEXT NOT NULL,           -- resource Key, or "op:" + operation ID
	deleted  INTEGER NOT NULL,
	PRIMARY KEY (revision, key)
) WITHOUT ROWID;
