-- Schema version 2: the activity log is filtered in SQL. Each event keeps, lower-cased, the
-- fields queries select on, and indexes serve newest-first scans per filter. Events written by
-- version 1 get the columns from their JSON body.

ALTER TABLE events ADD COLUMN resource_key   TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN resource_group TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN caller         TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN correlation_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN provider       TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN status         TEXT NOT NULL DEFAULT '';

UPDATE events SET
	resource_key   = lower(coalesce(json_extract(CAST(body AS TEXT), '$.resourceId'), '')),
	resource_group = lower(coalesce(json_extract(CAST(body AS TEXT), '$.resourceGroupName'), '')),
	caller         = lower(coalesce(json_extract(CAST(body AS TEXT), '$.caller'), '')),
	correlation_id = lower(coalesce(json_extract(CAST(body AS TEXT), '$.correlationId'), '')),
	provider       = lower(coalesce(json_extract(CAST(body AS TEXT), '$.resourceProviderName.value'), '')),
	status         = lower(coalesce(json_extract(CAST(body AS TEXT), '$.status.value'), ''))
WHERE json_valid(CAST(body AS TEXT));

DROP INDEX events_subscription;
CREATE INDEX events_newest ON events (subscription, seq);
CREATE INDEX events_resource ON events (subscription, resource_key, seq);
CREATE INDEX events_group ON events (subscription, resource_group, seq);
CREATE INDEX events_caller ON events (subscription, caller, seq);
CREATE INDEX events_correlation ON events (subscription, correlation_id, seq);
