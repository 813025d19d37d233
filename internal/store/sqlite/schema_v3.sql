-- Schema version 3: settings, pglink's own state that every process sharing the store agrees
-- on (the tenant, the token signing keys, the CA).

CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value BLOB
);
