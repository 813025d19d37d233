// Package sqlite is the embedded store.Store backend: one SQLite database file in WAL mode with
// synchronous=FULL, written through a single connection (so writers run one after another) and
// read through a pool of connections that run alongside the writer.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlq"
)

var _ store.Store = (*DB)(nil)

//go:embed schema.sql
var schemaV1 string

//go:embed schema_v2.sql
var schemaV2 string

//go:embed schema_v3.sql
var schemaV3 string

//go:embed schema_v4.sql
var schemaV4 string

//go:embed schema_v5.sql
var schemaV5 string

//go:embed schema_v6.sql
var schemaV6 string

// migrations[i] moves the schema from version i to version i+1; the version is kept in
// meta.schema_version. Append to it; never edit an entry that has shipped.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4, schemaV5, schemaV6}

// SchemaVersion returns the schema version this pglink writes and reads.
func SchemaVersion() int { return len(migrations) }

// Errors for misuse of a transaction.
var (
	errReadOnly = errors.New("write in a read-only transaction")
	errTxDone   = errors.New("transaction used after its function returned")
)

// DB is a store.Store kept in one SQLite database file. It is safe for concurrent use.
//
// Other processes may open the same file and see its writes, but Notify reports only commits
// made through this DB; run one pglink process per file.
type DB struct {
	write  *sql.DB // exactly one connection: holding it serializes writers
	read   *sql.DB // a pool of query_only connections
	logger *slog.Logger

	notify store.Broadcast
}

// Open opens the database file at path, creating it and its schema if needed and migrating an
// older schema. A nil logger discards logs. path must name a file: ":memory:" is not supported,
// because the writer and the readers use separate connections.
func Open(ctx context.Context, path string, logger *slog.Logger) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store %q: path must be a plain file name", path)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "store/sqlite")

	// busy_timeout only matters when another process holds the file; in this process the single
	// write connection already serializes writers. WAL lets readers run beside the writer, and
	// synchronous=FULL syncs the WAL on every commit so an acknowledged write survives a crash.
	const common = "?_pragma=busy_timeout(10000)"
	write, err := sql.Open("sqlite", path+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	readers := max(4, runtime.GOMAXPROCS(0))
	read, err := sql.Open("sqlite", path+common+"&_query_only=1")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)

	d := &DB{write: write, read: read, logger: logger}
	version, err := d.migrate(ctx)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	logger.Debug("opened", "path", path, "schema_version", version)
	return d, nil
}

// migrate brings the schema up to date in one write transaction and returns its version.
func (d *DB) migrate(ctx context.Context) (int, error) {
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate schema: create meta: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("migrate schema: read version: %w", err)
	}
	if version > len(migrations) {
		return 0, fmt.Errorf("migrate schema: database has schema version %d, newer than this pglink's %d; upgrade pglink",
			version, len(migrations))
	}
	if version == len(migrations) {
		return version, nil
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return 0, fmt.Errorf("migrate schema from version %d: %w", v, err)
		}
		d.logger.Info("migrated schema", "from", v, "to", v+1)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO meta (name, value) VALUES ('schema_version', ?)
		 ON CONFLICT (name) DO UPDATE SET value = excluded.value`, len(migrations)); err != nil {
		return 0, fmt.Errorf("migrate schema: write version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("migrate schema: commit: %w", err)
	}
	return len(migrations), nil
}

// Close closes the database and every channel Notify returned. Transactions still running fail.
func (d *DB) Close() error {
	d.notify.Close()
	return errors.Join(d.write.Close(), d.read.Close())
}

// View runs fn in a read-only transaction on a snapshot of the database. Writes in fn fail.
func (d *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	sqlTx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	defer sqlTx.Rollback()
	t := &tx{tx: sqlTx}
	defer func() { t.done = true }()
	return fn(t)
}

// Update runs fn in a write transaction and commits it, durably, if fn returns nil; otherwise
// it rolls back and returns fn's error as is. Writers run one at a time, so fn must not call
// Update or LeaseOperation on d, which would wait for itself.
func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	sqlTx, err := d.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE, see Open
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	defer sqlTx.Rollback() // also when fn panics, so the write connection is released
	t := &tx{tx: sqlTx, writable: true}
	err = fn(t)
	t.done = true
	if err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr // database/sql rolled back when ctx ended; say why
		}
		return fmt.Errorf("commit: %w", err)
	}
	if t.revision != 0 {
		d.notify.Signal()
	}
	return nil
}

// LeaseOperation hands the oldest InProgress operation whose lease is free or expired at now
// (LeaseUntil <= now) to owner until now+dur and increments its Attempts. It returns
// store.ErrNotFound if there is none.
func (d *DB) LeaseOperation(ctx context.Context, owner, node string, now time.Time, dur time.Duration) (store.Operation, error) {
	if owner == "" {
		return store.Operation{}, errors.New("lease operation: empty owner")
	}
	if dur <= 0 {
		return store.Operation{}, fmt.Errorf("lease operation for %s: lease duration %v is not positive", owner, dur)
	}
	var op store.Operation
	err := d.Update(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		var err error
		op, err = scanOperation(t.tx.QueryRowContext(ctx,
			`SELECT `+operationColumns+` FROM operations
			 WHERE status = 'InProgress' AND (lease_owner = '' OR lease_until <= ?) AND node IN ('', ?)
			 ORDER BY created, id LIMIT 1`, formatTime(now), node))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if op.Revision, err = t.nextRevision(ctx); err != nil {
			return err
		}
		op.LeaseOwner = owner
		op.LeaseUntil = normTime(now.Add(dur))
		op.Attempts++
		if _, err := t.tx.ExecContext(ctx,
			`UPDATE operations SET lease_owner = ?, lease_until = ?, attempts = ?, revision = ? WHERE id = ?`,
			op.LeaseOwner, formatTime(op.LeaseUntil), op.Attempts, op.Revision, op.ID); err != nil {
			return err
		}
		return t.changed(ctx, opKey(op.ID), false)
	})
	if err != nil {
		return store.Operation{}, fmt.Errorf("lease operation for %s: %w", owner, err)
	}
	return op, nil
}

// pruneBatch is how many events one PruneEvents transaction removes at most.
const pruneBatch = 5000

// PruneEvents implements store.Store. Events are appended in time order (Seq follows Time up to
// the few seconds a request takes), so the events to remove are those below a cut in Seq: the
// first event at or after before, and the keep-th newest.
func (d *DB) PruneEvents(ctx context.Context, before time.Time, keep int) (int64, error) {
	var total int64
	for {
		var cut int64 // remove seq < cut
		err := d.read.QueryRowContext(ctx,
			`SELECT coalesce((SELECT seq FROM events WHERE time >= ? ORDER BY seq LIMIT 1),
			                 (SELECT coalesce(max(seq), 0) + 1 FROM events))`, formatTime(before)).Scan(&cut)
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		if keep > 0 {
			var byCount int64
			err := d.read.QueryRowContext(ctx,
				`SELECT coalesce((SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?), 0)`, keep-1).Scan(&byCount)
			if err != nil {
				return total, fmt.Errorf("prune events: %w", err)
			}
			cut = max(cut, byCount)
		}
		sqlTx, err := d.write.BeginTx(ctx, nil)
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		res, err := sqlTx.ExecContext(ctx,
			`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq < ? ORDER BY seq LIMIT ?)`, cut, pruneBatch)
		if err == nil {
			err = sqlTx.Commit()
		}
		if err != nil {
			sqlTx.Rollback()
			return total, fmt.Errorf("prune events: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// Events returns the activity log events q selects, newest first. Each filter is served by an
// index on (subscription, column, seq), so the newest matching events are read first.
func (d *DB) Events(ctx context.Context, q store.EventQuery) ([]store.Event, error) {
	if q.Subscription == "" {
		return nil, errors.New("list events: no subscription")
	}
	query, args := eventsQuery(q)
	rows, err := d.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", q.Subscription, err)
	}
	defer rows.Close()
	var events []store.Event
	for rows.Next() {
		var e store.Event
		var ts string
		if err := rows.Scan(&e.Seq, &ts, &e.Subscription, &e.ResourceID, &e.ResourceGroup, &e.Caller,
			&e.CorrelationID, &e.Provider, &e.Status, &e.Body); err != nil {
			return nil, fmt.Errorf("list events of %s: %w", q.Subscription, err)
		}
		if e.Time, err = parseTime(ts); err != nil {
			return nil, fmt.Errorf("list events of %s: event %d: %w", q.Subscription, e.Seq, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events of %s: %w", q.Subscription, err)
	}
	return events, nil
}

// eventsQuery returns the SQL and arguments of Events(q).
func eventsQuery(q store.EventQuery) (string, []any) {
	sq := sqlq.New(dialect)
	sq.Events(q)
	// The most selective filter picks the index, so the plan does not depend on statistics.
	index := "events_newest"
	switch {
	case q.ResourceID != "":
		index = "events_resource"
	case q.CorrelationID != "":
		index = "events_correlation"
	case q.Caller != "":
		index = "events_caller"
	case q.ResourceGroup != "":
		index = "events_group"
	}
	return `SELECT seq, time, subscription, resource_key, resource_group, caller, correlation_id, provider, status, body
		 FROM events INDEXED BY ` + index + sq.Clause() + ` ORDER BY seq DESC LIMIT ` + sq.Arg(sqlLimit(q.Limit)), sq.Args
}

// dialect is SQLite's for the filters sqlq builds.
var dialect = sqlq.Dialect{Time: func(t time.Time) any { return formatTime(t) }, Type: `type = %s COLLATE NOCASE`}

// Revision returns the latest committed revision; 0 for a new database.
func (d *DB) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := d.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'revision'`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

// Changes returns the changes with revision > since, ordered by revision and then key, at most
// limit (0 for all). A key written more than once in one transaction appears once, with the
// last write's Deleted.
func (d *DB) Changes(ctx context.Context, since int64, limit int) ([]store.Change, error) {
	rows, err := d.read.QueryContext(ctx,
		`SELECT revision, key, deleted FROM changes WHERE revision > ? ORDER BY revision, key LIMIT ?`,
		since, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list changes since %d: %w", since, err)
	}
	defer rows.Close()
	var changes []store.Change
	for rows.Next() {
		var c store.Change
		if err := rows.Scan(&c.Revision, &c.Key, &c.Deleted); err != nil {
			return nil, fmt.Errorf("list changes since %d: %w", since, err)
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list changes since %d: %w", since, err)
	}
	return changes, nil
}

// Notify returns a channel that receives a value after each commit through d that wrote
// something. A subscriber that does not keep up misses values, never commits: the channel
// holds one value. The channel is closed when ctx is done or d is closed.
func (d *DB) Notify(ctx context.Context) <-chan struct{} { return d.notify.Subscribe(ctx) }

// tx is a store.Tx over one SQL transaction.
type tx struct {
	tx       *sql.Tx
	writable bool
	done     bool  // set when the transaction's function returned
	revision int64 // the revision this transaction writes at; 0 until its first write
}

// check reports misuse: a write in a View, or any use after the function returned.
func (t *tx) check(write bool) error {
	if t.done {
		return errTxDone
	}
	if write && !t.writable {
		return errReadOnly
	}
	return nil
}

// nextRevision returns the revision this transaction writes at, taking the next one on the
// first write.
func (t *tx) nextRevision(ctx context.Context) (int64, error) {
	if t.revision != 0 {
		return t.revision, nil
	}
	var rev int64
	if err := t.tx.QueryRowContext(ctx,
		`UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("take revision: %w", err)
	}
	t.revision = rev
	return rev, nil
}

// changed records a write of key on the change feed.
func (t *tx) changed(ctx context.Context, key string, deleted bool) error {
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO changes (revision, key, deleted) VALUES (?, ?, ?)
		 ON CONFLICT (revision, key) DO UPDATE SET deleted = excluded.deleted`,
		t.revision, key, deleted); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	return nil
}

const resourceColumns = `key, id, type, parent, body, etag, revision`

func scanResource(row interface{ Scan(...any) error }) (store.Resource, error) {
	var r store.Resource
	err := row.Scan(&r.Key, &r.ID, &r.Type, &r.Parent, &r.Body, &r.ETag, &r.Revision)
	return r, err
}

func (t *tx) Get(ctx context.Context, key string) (store.Resource, error) {
	if err := t.check(false); err != nil {
		return store.Resource{}, fmt.Errorf("get resource %s: %w", key, err)
	}
	r, err := scanResource(t.tx.QueryRowContext(ctx, `SELECT `+resourceColumns+` FROM resources WHERE key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Resource{}, fmt.Errorf("get resource %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return store.Resource{}, fmt.Errorf("get resource %s: %w", key, err)
	}
	return r, nil
}

func (t *tx) List(ctx context.Context, opts store.ListOptions) ([]store.Resource, error) {
	if err := t.check(false); err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	sq := sqlq.New(dialect)
	sq.Resources(opts)
	q := `SELECT ` + resourceColumns + ` FROM resources` + sq.Clause() + ` ORDER BY key LIMIT ` + sq.Arg(sqlLimit(opts.Limit))

	rows, err := t.tx.QueryContext(ctx, q, sq.Args...)
	if err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	defer rows.Close()
	var list []store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, fmt.Errorf("list resources: %w", err)
		}
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	return list, nil
}

func (t *tx) Put(ctx context.Context, r store.Resource, ifETag string) (store.Resource, error) {
	if err := t.check(true); err != nil {
		return store.Resource{}, fmt.Errorf("put resource %s: %w", r.Key, err)
	}
	if r.Key == "" {
		return store.Resource{}, errors.New("put resource: empty key")
	}
	if ifETag != "" {
		var etag string
		err := t.tx.QueryRowContext(ctx, `SELECT etag FROM resources WHERE key = ?`, r.Key).Scan(&etag)
		if errors.Is(err, sql.ErrNoRows) {
			return store.Resource{}, fmt.Errorf("put resource %s if etag %s: %w", r.Key, ifETag, store.ErrNotFound)
		}
		if err != nil {
			return store.Resource{}, fmt.Errorf("put resource %s: %w", r.Key, err)
		}
		if ifETag != "*" && ifETag != etag {
			return store.Resource{}, fmt.Errorf("put resource %s if etag %s: etag is %s: %w", r.Key, ifETag, etag, store.ErrConflict)
		}
	}
	rev, err := t.nextRevision(ctx)
	if err != nil {
		return store.Resource{}, fmt.Errorf("put resource %s: %w", r.Key, err)
	}
	r.ETag, r.Revision = newETag(), rev
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO resources (`+resourceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (key) DO UPDATE SET id = excluded.id, type = excluded.type, parent = excluded.parent,
		 body = excluded.body, etag = excluded.etag, revision = excluded.revision`,
		r.Key, r.ID, r.Type, r.Parent, r.Body, r.ETag, r.Revision); err != nil {
		return store.Resource{}, fmt.Errorf("put resource %s: %w", r.Key, err)
	}
	if err := t.changed(ctx, r.Key, false); err != nil {
		return store.Resource{}, fmt.Errorf("put resource %s: %w", r.Key, err)
	}
	return r, nil
}

func (t *tx) Delete(ctx context.Context, key string) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("delete resource %s: %w", key, err)
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM resources WHERE key = ?`, key)
	if err != nil {
		return fmt.Errorf("delete resource %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete resource %s: %w", key, err)
	} else if n == 0 {
		return fmt.Errorf("delete resource %s: %w", key, store.ErrNotFound)
	}
	if _, err := t.nextRevision(ctx); err != nil {
		return fmt.Errorf("delete resource %s: %w", key, err)
	}
	if err := t.changed(ctx, key, true); err != nil {
		return fmt.Errorf("delete resource %s: %w", key, err)
	}
	return nil
}

const operationColumns = `id, resource_key, resource_id, kind, goal, status, input, error, method, location,
	lease_owner, lease_until, attempts, created, updated, revision, node`

func scanOperation(row interface{ Scan(...any) error }) (store.Operation, error) {
	var op store.Operation
	var leaseUntil, created, updated string
	err := row.Scan(&op.ID, &op.ResourceKey, &op.ResourceID, &op.Kind, &op.Goal, &op.Status, &op.Input, &op.Error,
		&op.Method, &op.Location, &op.LeaseOwner, &leaseUntil, &op.Attempts, &created, &updated, &op.Revision, &op.Node)
	if err != nil {
		return store.Operation{}, err
	}
	if op.LeaseUntil, err = parseTime(leaseUntil); err != nil {
		return store.Operation{}, err
	}
	if op.Created, err = parseTime(created); err != nil {
		return store.Operation{}, err
	}
	if op.Updated, err = parseTime(updated); err != nil {
		return store.Operation{}, err
	}
	return op, nil
}

// opKey is an operation's key on the change feed.
func opKey(id string) string { return "op:" + id }

func (t *tx) Operation(ctx context.Context, id string) (store.Operation, error) {
	if err := t.check(false); err != nil {
		return store.Operation{}, fmt.Errorf("get operation %s: %w", id, err)
	}
	op, err := scanOperation(t.tx.QueryRowContext(ctx, `SELECT `+operationColumns+` FROM operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Operation{}, fmt.Errorf("get operation %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Operation{}, fmt.Errorf("get operation %s: %w", id, err)
	}
	return op, nil
}

func (t *tx) ActiveOperation(ctx context.Context, resourceKey string) (store.Operation, error) {
	if err := t.check(false); err != nil {
		return store.Operation{}, fmt.Errorf("get active operation on %s: %w", resourceKey, err)
	}
	op, err := scanOperation(t.tx.QueryRowContext(ctx,
		`SELECT `+operationColumns+` FROM operations WHERE resource_key = ? AND status = 'InProgress'`, resourceKey))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Operation{}, fmt.Errorf("get active operation on %s: %w", resourceKey, store.ErrNotFound)
	}
	if err != nil {
		return store.Operation{}, fmt.Errorf("get active operation on %s: %w", resourceKey, err)
	}
	return op, nil
}

func (t *tx) PutOperation(ctx context.Context, op store.Operation) (store.Operation, error) {
	if err := t.check(true); err != nil {
		return store.Operation{}, fmt.Errorf("put operation %s: %w", op.ID, err)
	}
	if op.ID == "" {
		return store.Operation{}, errors.New("put operation: empty id")
	}
	switch op.Status {
	case store.OpInProgress:
		var other string
		err := t.tx.QueryRowContext(ctx,
			`SELECT id FROM operations WHERE resource_key = ? AND status = 'InProgress' AND id <> ?`,
			op.ResourceKey, op.ID).Scan(&other)
		if err == nil {
			return store.Operation{}, fmt.Errorf("put operation %s: operation %s is in progress on %s: %w",
				op.ID, other, op.ResourceKey, store.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return store.Operation{}, fmt.Errorf("put operation %s: %w", op.ID, err)
		}
	case store.OpSucceeded, store.OpFailed, store.OpCanceled:
	default:
		return store.Operation{}, fmt.Errorf("put operation %s: unknown status %q", op.ID, op.Status)
	}
	rev, err := t.nextRevision(ctx)
	if err != nil {
		return store.Operation{}, fmt.Errorf("put operation %s: %w", op.ID, err)
	}
	op.Revision = rev
	op.LeaseUntil, op.Created, op.Updated = normTime(op.LeaseUntil), normTime(op.Created), normTime(op.Updated)
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO operations (`+operationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET resource_key = excluded.resource_key, resource_id = excluded.resource_id,
		 kind = excluded.kind, goal = excluded.goal, status = excluded.status, input = excluded.input,
		 error = excluded.error, method = excluded.method, location = excluded.location,
		 lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, attempts = excluded.attempts,
		 created = excluded.created, updated = excluded.updated, revision = excluded.revision, node = excluded.node`,
		op.ID, op.ResourceKey, op.ResourceID, op.Kind, op.Goal, op.Status, op.Input, op.Error, op.Method,
		op.Location, op.LeaseOwner, formatTime(op.LeaseUntil), op.Attempts, formatTime(op.Created),
		formatTime(op.Updated), op.Revision, op.Node); err != nil {
		return store.Operation{}, fmt.Errorf("put operation %s: %w", op.ID, err)
	}
	if err := t.changed(ctx, opKey(op.ID), false); err != nil {
		return store.Operation{}, fmt.Errorf("put operation %s: %w", op.ID, err)
	}
	return op, nil
}

func (t *tx) AppendEvent(ctx context.Context, e store.Event) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	if _, err := t.nextRevision(ctx); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO events (time, subscription, resource_key, resource_group, caller, correlation_id, provider, status, body)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		formatTime(e.Time), strings.ToLower(e.Subscription), strings.ToLower(e.ResourceID), strings.ToLower(e.ResourceGroup),
		strings.ToLower(e.Caller), strings.ToLower(e.CorrelationID), strings.ToLower(e.Provider), strings.ToLower(e.Status),
		e.Body); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return nil
}

func (t *tx) Principal(ctx context.Context, idOrLogin string) (store.Principal, error) {
	if err := t.check(false); err != nil {
		return store.Principal{}, fmt.Errorf("get principal %s: %w", idOrLogin, err)
	}
	var p store.Principal
	// object_id compares case-insensitively (COLLATE NOCASE); an object id match wins.
	err := t.tx.QueryRowContext(ctx,
		`SELECT object_id, login, body FROM principals WHERE object_id = ? OR login_key = ?
		 ORDER BY object_id = ? DESC LIMIT 1`,
		idOrLogin, strings.ToLower(idOrLogin), idOrLogin).Scan(&p.ObjectID, &p.Login, &p.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Principal{}, fmt.Errorf("get principal %s: %w", idOrLogin, store.ErrNotFound)
	}
	if err != nil {
		return store.Principal{}, fmt.Errorf("get principal %s: %w", idOrLogin, err)
	}
	return p, nil
}

func (t *tx) PutPrincipal(ctx context.Context, p store.Principal) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	if p.ObjectID == "" || p.Login == "" {
		return fmt.Errorf("put principal %q: empty object id or login", p.ObjectID)
	}
	loginKey := strings.ToLower(p.Login)
	var other string
	err := t.tx.QueryRowContext(ctx,
		`SELECT object_id FROM principals WHERE login_key = ? AND object_id <> ?`, loginKey, p.ObjectID).Scan(&other)
	if err == nil {
		return fmt.Errorf("put principal %s: login %s belongs to %s: %w", p.ObjectID, p.Login, other, store.ErrConflict)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	if _, err := t.nextRevision(ctx); err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO principals (object_id, login, login_key, body) VALUES (?, ?, ?, ?)
		 ON CONFLICT (object_id) DO UPDATE SET object_id = excluded.object_id, login = excluded.login,
		 login_key = excluded.login_key, body = excluded.body`,
		p.ObjectID, p.Login, loginKey, p.Body); err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	return nil
}

func (t *tx) Principals(ctx context.Context, after string, limit int) ([]store.Principal, error) {
	if err := t.check(false); err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.tx.QueryContext(ctx,
		`SELECT object_id, login, body FROM principals WHERE object_id > ? ORDER BY object_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	defer rows.Close()
	var out []store.Principal
	for rows.Next() {
		var p store.Principal
		if err := rows.Scan(&p.ObjectID, &p.Login, &p.Body); err != nil {
			return nil, fmt.Errorf("list principals: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	return out, nil
}

func (t *tx) DeletePrincipal(ctx context.Context, objectID string) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("delete principal %s: %w", objectID, err)
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM principals WHERE object_id = ?`, objectID)
	if err != nil {
		return fmt.Errorf("delete principal %s: %w", objectID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete principal %s: %w", objectID, err)
	} else if n == 0 {
		return fmt.Errorf("delete principal %s: %w", objectID, store.ErrNotFound)
	}
	if _, err := t.nextRevision(ctx); err != nil {
		return fmt.Errorf("delete principal %s: %w", objectID, err)
	}
	return nil
}

func (t *tx) Setting(ctx context.Context, name string) ([]byte, error) {
	if err := t.check(false); err != nil {
		return nil, fmt.Errorf("get setting %s: %w", name, err)
	}
	var value []byte
	err := t.tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get setting %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get setting %s: %w", name, err)
	}
	return value, nil
}

func (t *tx) PutSetting(ctx context.Context, name string, value []byte) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	if name == "" {
		return errors.New("put setting: empty name")
	}
	if _, err := t.nextRevision(ctx); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
		name, value); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	if err := t.changed(ctx, "setting:"+name, false); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	return nil
}

// timeLayout is fixed width, so stored times compare as strings in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t, nil
}

// normTime returns t as the store gives it back: UTC, without a monotonic clock reading.
func normTime(t time.Time) time.Time { return t.Round(0).UTC() }

// sqlLimit turns a limit where 0 means none into SQLite's, where -1 does.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// newETag returns a fresh opaque ETag: a random UUID in quotes, as Azure writes them.
func newETag() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf(`"%x-%x-%x-%x-%x"`, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// PutNode implements store.Store.
func (d *DB) PutNode(ctx context.Context, n store.Node) error {
	if n.Name == "" {
		return errors.New("put node: empty name")
	}
	_, err := d.write.ExecContext(ctx,
		`INSERT INTO nodes (name, zone, network, endpoint, address, applied, started, heartbeat, expires)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, network = excluded.network,
		 endpoint = excluded.endpoint, address = excluded.address, applied = max(nodes.applied, excluded.applied),
		 started = excluded.started, heartbeat = excluded.heartbeat, expires = excluded.expires`,
		n.Name, n.Zone, n.Network, n.Endpoint, n.Address, n.Applied, formatTime(normTime(n.Started)),
		formatTime(normTime(n.Heartbeat)), formatTime(normTime(n.Expires)))
	if err != nil {
		return fmt.Errorf("put node %s: %w", n.Name, err)
	}
	return nil
}

// Nodes implements store.Store.
func (d *DB) Nodes(ctx context.Context) ([]store.Node, error) { return nodes(ctx, d.read) }

// Nodes implements store.Tx.
func (t *tx) Nodes(ctx context.Context) ([]store.Node, error) {
	if err := t.check(false); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes(ctx, t.tx)
}

func nodes(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]store.Node, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT name, zone, network, endpoint, address, applied, started, heartbeat, expires FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rows.Close()
	var out []store.Node
	for rows.Next() {
		var n store.Node
		var started, heartbeat, expires string
		if err := rows.Scan(&n.Name, &n.Zone, &n.Network, &n.Endpoint, &n.Address, &n.Applied, &started, &heartbeat, &expires); err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		for _, f := range []struct {
			s string
			t *time.Time
		}{{started, &n.Started}, {heartbeat, &n.Heartbeat}, {expires, &n.Expires}} {
			if *f.t, err = parseTime(f.s); err != nil {
				return nil, fmt.Errorf("list nodes: %w", err)
			}
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// DeleteNode implements store.Tx.
func (t *tx) DeleteNode(ctx context.Context, name string) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	res, err := t.tx.ExecContext(ctx, `DELETE FROM nodes WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete node %s: %w", name, store.ErrNotFound)
	}
	if _, err := t.tx.ExecContext(ctx, `UPDATE operations SET node = '' WHERE node = ? AND status = 'InProgress'`, name); err != nil {
		return fmt.Errorf("release the operations of node %s: %w", name, err)
	}
	return nil
}
