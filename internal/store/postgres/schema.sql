-- Schema version 1. Keys and the other columns that List, Changes and Events order or range
-- over use the "C" collation, so they sort byte by byte whatever the database's locale, as the
-- SQLite store's do.

-- The global revision: one row. Every writing transaction locks this table first (see
-- postgres.go, "Revision order").
CREATE TABLE revision (
	one   boolean PRIMARY KEY DEFAULT true CHECK (one),
	value bigint NOT NULL
);
INSERT INTO revision (value) VALUES (0);

CREATE TABLE resources (
	key      text COLLATE "C" PRIMARY KEY, -- lower-cased ARM ID
	id       text NOT NULL,                -- ARM ID as last written
	type     text NOT NULL,
	type_key text COLLATE "C" NOT NULL,    -- lower-cased type
	parent   text COLLATE "C" NOT NULL,    -- Key of the containing scope
	body     bytea,
	etag     text NOT NULL,
	revision bigint NOT NULL
);
CREATE INDEX resources_parent ON resources (parent, key);
CREATE INDEX resources_type ON resources (type_key, key);

CREATE TABLE operations (
	id           text COLLATE "C" PRIMARY KEY,
	resource_key text COLLATE "C" NOT NULL,
	resource_id  text NOT NULL,
	kind         text NOT NULL,
	goal         text NOT NULL,
	status       text NOT NULL,
	input        bytea,
	error        bytea,
	method       text NOT NULL,
	location     text NOT NULL,
	lease_owner  text NOT NULL,
	lease_until  timestamptz NOT NULL,
	attempts     integer NOT NULL,
	created      timestamptz NOT NULL,
	updated      timestamptz NOT NULL,
	revision     bigint NOT NULL
);
-- At most one InProgress operation per resource; also how ActiveOperation finds it.
CREATE UNIQUE INDEX operations_active ON operations (resource_key) WHERE status = 'InProgress';
-- LeaseOperation scans InProgress operations oldest first.
CREATE INDEX operations_lease ON operations (created, id) WHERE status = 'InProgress';

-- The activity log. The fields queries select on are kept lower-cased; each filter has an
-- index that serves a newest-first scan.
CREATE TABLE events (
	seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time           timestamptz NOT NULL,
	subscription   text COLLATE "C" NOT NULL,
	resource_key   text COLLATE "C" NOT NULL,
	resource_group text COLLATE "C" NOT NULL,
	caller         text COLLATE "C" NOT NULL,
	correlation_id text COLLATE "C" NOT NULL,
	provider       text COLLATE "C" NOT NULL,
	status         text COLLATE "C" NOT NULL,
	body           bytea
);
CREATE INDEX events_newest ON events (subscription, seq);
CREATE INDEX events_resource ON events (subscription, resource_key, seq);
CREATE INDEX events_group ON events (subscription, resource_group, seq);
CREATE INDEX events_caller ON events (subscription, caller, seq);
CREATE INDEX events_correlation ON events (subscription, correlation_id, seq);

CREATE TABLE principals (
	object_key text COLLATE "C" PRIMARY KEY,  -- lower-cased object id
	object_id  text NOT NULL,                 -- as last written
	login      text NOT NULL,                 -- as last written
	login_key  text COLLATE "C" NOT NULL UNIQUE, -- lower-cased login
	body       bytea
);

-- pglink's own state that every process sharing the store agrees on (the tenant, the token
-- signing keys, the CA).
CREATE TABLE settings (
	name  text COLLATE "C" PRIMARY KEY,
	value bytea
);

CREATE TABLE changes (
	revision bigint NOT NULL,
	key      text COLLATE "C" NOT NULL, -- resource Key, "op:" + operation ID, or "setting:" + name
	deleted  boolean NOT NULL,
	PRIMARY KEY (revision, key)
);
