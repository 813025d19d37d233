// Package postgres is the store.Store backend on PostgreSQL, for several pglink processes that
// share one store. It talks to PostgreSQL through a pgx connection pool; pgx prepares each
// statement once per connection and caches it.
//
// # Revision order
//
// Every writing transaction (Update, LeaseOperation) runs at SERIALIZABLE and begins with
// LOCK TABLE revision IN EXCLUSIVE MODE, before any other statement. That lock conflicts with
// itself and with nothing readers take, so writers run one at a time across every process
// while View, Revision, Changes and Events go on beside them. Three facts make the revision
// order the commit order:
//
//   - LOCK TABLE takes no snapshot, and a SERIALIZABLE transaction takes its snapshot at its
//     first query, which comes after the lock is granted: each writer sees every earlier
//     writer's commit, so writers do not fail each other with serialization errors (but for a
//     rare one on a busy host: PostgreSQL releases a committing transaction's locks a moment
//     before its serializable bookkeeping marks it committed, and a writer granted the lock in
//     that moment counts as concurrent with it; Update retries it);
//   - a writer takes its revision (value + 1 of the one row of table revision) while it holds
//     the lock, and PostgreSQL releases a transaction's locks only after its commit is visible
//     to new snapshots;
//   - hence a writer that takes revision N+1 does so after the writer of N committed and became
//     visible. A reader of the change feed (Changes) that sees revision N+1 committed also sees
//     N: the feed never skips a revision that commits later with a smaller number.
//
// Update still retries serialization failures (SQLSTATE 40001) and deadlocks (40P01), which
// other clients of the database may cause, a bounded number of times with jittered backoff.
//
// # Notifications
//
// A commit that writes sends NOTIFY on channel pglink_changes in its transaction, so it is
// delivered only if the commit is. Each DB listens on a connection of its own (not the pool's),
// reconnects with backoff when it is lost, and after each (re)connection signals every Notify
// channel once, so readers re-read whatever was committed while no one listened.
package postgres

import (
	"context"
	crand "crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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

// migrations[i] moves the schema from version i to version i+1; the version is kept in
// meta.schema_version. Append to it; never edit an entry that has shipped.
var migrations = []string{schemaV1, schemaV2, schemaV3}

// SchemaVersion returns the schema version this pglink writes and reads.
func SchemaVersion() int { return len(migrations) }

// channel is the LISTEN/NOTIFY channel of commits.
const channel = "pglink_changes"

// migrateLock is the advisory lock key under which a process migrates the schema, so replicas
// that start together migrate once.
const migrateLock int64 = 0x70676c696e6b01 // "pglink", 1

// Retry and reconnection timing.
const (
	maxAttempts        = 10 // of one Update
	retryBase          = 2 * time.Millisecond
	retryMax           = 200 * time.Millisecond
	reconnectBase      = 100 * time.Millisecond
	reconnectMax       = 10 * time.Second
	listenCloseTimeout = 5 * time.Second
)

// Errors for misuse of a transaction.
var (
	errReadOnly = errors.New("write in a read-only transaction")
	errTxDone   = errors.New("transaction used after its function returned")
)

// DB is a store.Store in a PostgreSQL database. It is safe for concurrent use, and any number
// of processes may open the same database.
type DB struct {
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig // of the notification connection
	logger    *slog.Logger

	stopListen context.CancelFunc
	listenDone chan struct{}
	listenPID  atomic.Uint32 // backend PID of the notification connection, 0 while there is none
	retries    atomic.Int64  // transactions rerun after a serialization failure or deadlock
	// writer is held by this process's one write transaction at a time. Writers of every
	// process run one at a time anyway (the writers' lock): waiting here rather than in LOCK
	// TABLE keeps the pool's other connections for readers, heartbeats and the writer's own
	// reads, instead of filling the pool with writers that wait.
	writer chan struct{}

	notify store.Broadcast
}

// Redacted returns connString, a postgres:// or postgresql:// URL, with its password replaced
// by "xxxxx", for logs and error messages. A string that is not such a URL comes back as a
// placeholder: it may hold a password in a form this function does not know.
func Redacted(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "(connection string)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Open connects to the database connString names (a postgres:// URL or a key=value connection
// string, as libpq and pgx take them; PG* environment variables fill in what it leaves out),
// creates or migrates the schema, and starts listening for commits. It refuses a database whose
// schema is newer than this pglink's. A nil logger discards logs; the password is never logged.
func Open(ctx context.Context, connString string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "store/postgres")
	name := Redacted(connString)
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgx's parse errors may quote the input, password and all.
		return nil, fmt.Errorf("open postgres store %s: cannot parse the connection string; "+
			"write it as postgres://user:password@host:port/database?option=value", name)
	}
	for k, v := range map[string]string{
		"application_name": "pglink",
		// A writer holds the writers' lock: if its process hangs or is cut off mid-transaction,
		// PostgreSQL ends the session, so the others are not held up for good.
		"idle_in_transaction_session_timeout": "60s",
	} {
		if _, ok := cfg.ConnConfig.RuntimeParams[k]; !ok {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	if !strings.Contains(connString, "pool_max_conns") {
		cfg.MaxConns = defaultPoolSize // pgx's default, 4 on a small host, is too few for an API server
	}
	listenCfg := cfg.ConnConfig.Copy()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	d := &DB{pool: pool, listenCfg: listenCfg, logger: logger,
		listenDone: make(chan struct{}), writer: make(chan struct{}, 1)}
	version, err := d.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.stopListen = cancel
	go d.listen(lctx)
	logger.Info("opened", "store", name, "schema_version", version)
	return d, nil
}

// migrate brings the schema up to date in one transaction, under an advisory lock so that
// processes starting together migrate once, and returns its version.
func (d *DB) migrate(ctx context.Context) (int, error) {
	tx, err := d.pool.Begin(ctx) // READ COMMITTED: after the lock, each statement sees the latest
	if err != nil {
		return 0, fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return 0, fmt.Errorf("migrate schema: lock: %w", err)
	}
	if _, err := tx.Exec(ctx,
		`CREATE TABLE IF NOT EXISTS meta (name text PRIMARY KEY, value bigint NOT NULL)`); err != nil {
		return 0, fmt.Errorf("migrate schema: create meta: %w", err)
	}
	var version int
	err = tx.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return 0, fmt.Errorf("migrate schema from version %d: %w", v, err)
		}
		d.logger.Info("migrated schema", "from", v, "to", v+1)
	}
	if _, err := tx.Exec(ctx,
		`INSERT INTO meta (name, value) VALUES ('schema_version', $1)
		 ON CONFLICT (name) DO UPDATE SET value = excluded.value`, len(migrations)); err != nil {
		return 0, fmt.Errorf("migrate schema: write version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("migrate schema: commit: %w", err)
	}
	return len(migrations), nil
}

// Close stops listening, closes every channel Notify returned and closes the pool, waiting for
// connections in use to be returned.
func (d *DB) Close() error {
	if d.notify.Close() {
		return nil
	}
	d.stopListen()
	<-d.listenDone
	d.pool.Close()
	return nil
}

// View runs fn in a read-only REPEATABLE READ transaction: a snapshot of the database. Since
// writers run one at a time (see "Revision order"), every snapshot is a state between two
// commits, as SERIALIZABLE would give, without the risk of a serialization failure. Writes in
// fn fail. The BEGIN goes with fn's first statement, and the transaction is rolled back after
// View returns: neither costs the caller a round trip of its own. The connection goes back to
// the pool once the rollback is done.
func (d *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", unavailable(err))
	}
	q := &txConn{c: c, begin: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`}
	t := &tx{tx: q}
	defer func() {
		t.done = true
		go q.rollback(ctx) // see above: fn's results do not wait for it
	}()
	return unavailable(fn(t))
}

// Update runs fn in a SERIALIZABLE write transaction and commits it if fn returns nil;
// otherwise it rolls back and returns fn's error as is. Writers run one at a time, across
// processes (see "Revision order"), so fn must not call Update or LeaseOperation on any DB of
// the same database, which would wait for itself. If fn or the commit fails with a
// serialization failure or a deadlock, Update runs fn again, at most 10 times in all.
func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return d.write(ctx, func(t *tx) error { return fn(t) })
}

// write runs fn in a write transaction (attempt), again after a serialization failure or a
// deadlock, with jittered exponential backoff.
func (d *DB) write(ctx context.Context, fn func(*tx) error) error {
	for attempt := 1; ; attempt++ {
		err := d.attempt(ctx, fn)
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("write transaction failed %d times; giving up: %w", attempt, err)
		}
		d.retries.Add(1)
		wait := min(retryBase<<(attempt-1), retryMax)
		wait = wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("retry write transaction: %w (after %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// unavailable wraps err with store.ErrUnavailable if it means the database cannot be reached:
// a connection that could not be made (for any reason the server gave) or was lost, or a server
// that is shutting down or starting (SQLSTATE class 08, 57P01–57P03).
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var netErr net.Error
	down := false
	switch {
	case errors.As(err, &connErr): // whatever the server said, no connection could be made
		down = true
	case errors.As(err, &pgErr):
		down = strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	default:
		down = errors.As(err, &netErr) || pgconn.SafeToRetry(err) || errors.Is(err, io.ErrUnexpectedEOF)
	}
	if down {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// retryable reports whether err means the transaction lost a race it may win when run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// defaultPoolSize is the pool's size unless the connection string sets pool_max_conns.
const defaultPoolSize = 16

// attempt runs fn in one write transaction. The BEGIN goes with the writers' lock in one round
// trip; the NOTIFY is queued with the revision (nextRevision).
func (d *DB) attempt(ctx context.Context, fn func(*tx) error) error {
	select {
	case d.writer <- struct{}{}:
		defer func() { <-d.writer }()
	case <-ctx.Done():
		return fmt.Errorf("begin write transaction: %w", ctx.Err())
	}
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", unavailable(err))
	}
	q := &txConn{c: c, begin: `BEGIN ISOLATION LEVEL SERIALIZABLE`}
	committed := false
	defer func() { // also when fn panics
		if !committed {
			q.rollback(ctx)
		}
	}()
	// First, before any snapshot is taken: see "Revision order".
	if _, err := q.Exec(ctx, `LOCK TABLE revision IN EXCLUSIVE MODE`); err != nil {
		return fmt.Errorf("begin write transaction: lock revision: %w", unavailable(err))
	}
	t := &tx{tx: q, writable: true}
	err = fn(t)
	t.done = true
	if err != nil {
		return unavailable(err)
	}
	committed = true
	if err := q.commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", unavailable(err))
	}
	if t.revision != 0 {
		d.notify.Signal() // at once; the NOTIFY reaches other processes
	}
	return nil
}

// txConn is the connection of one transaction. Its BEGIN is not sent on its own: it goes with
// the transaction's first statement, in one round trip. A transaction that runs no statement
// sends nothing.
type txConn struct {
	c     *pgxpool.Conn
	begin string // the BEGIN statement until it is sent, then ""
	err   error  // why the BEGIN failed: every later statement fails with it
}

// started reports whether the BEGIN went through, so statements go to the connection as is.
func (q *txConn) started() bool { return q.begin == "" && q.err == nil }

// first sends the BEGIN and sql as one batch; sql's result is the batch's next.
func (q *txConn) first(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if q.err != nil {
		return nil, q.err
	}
	b := &pgx.Batch{}
	b.Queue(q.begin)
	b.Queue(sql, args...)
	q.begin = ""
	br := q.c.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		q.err = err
		return nil, err
	}
	return br, nil
}

func (q *txConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if q.started() {
		return q.c.Exec(ctx, sql, args...)
	}
	br, err := q.first(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (q *txConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if q.started() {
		return q.c.Query(ctx, sql, args...)
	}
	br, err := q.first(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (q *txConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if q.started() {
		return q.c.QueryRow(ctx, sql, args...)
	}
	rows, err := q.Query(ctx, sql, args...)
	return &firstRow{rows: rows, err: err}
}

// commit commits the transaction, if it ran a statement, and releases the connection.
func (q *txConn) commit(ctx context.Context) error {
	defer q.c.Release()
	if q.begin != "" {
		return nil
	}
	tag, err := q.c.Exec(ctx, `COMMIT`)
	if err == nil && tag.String() == "ROLLBACK" { // the transaction had failed
		err = pgx.ErrTxCommitRollback
	}
	if err != nil && q.c.Conn().PgConn().TxStatus() != 'I' {
		q.c.Conn().Close(context.WithoutCancel(ctx)) // the pool drops a closed connection
	}
	return err
}

// rollback rolls the transaction back, if it ran a statement, and releases the connection; it
// closes the connection if the rollback fails (the pool drops a closed connection).
func (q *txConn) rollback(ctx context.Context) {
	defer q.c.Release()
	if q.begin != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenCloseTimeout)
	defer cancel()
	if _, err := q.c.Exec(ctx, `ROLLBACK`); err != nil {
		q.c.Conn().Close(ctx)
	}
}

// batchRows are the rows of a transaction's first statement: closing them reads the rest of
// the batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error // of closing br
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// firstRow is QueryRow's answer for a transaction's first statement, as pgx's.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r *firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// Exclusive runs fn while it holds the session advisory lock named name in d's database, so
// that processes sharing the database run it one at a time; it waits for the lock until ctx is
// done. The lock is held on a connection of its own: fn may use d. If that connection is lost
// while fn runs, the lock is released early, so fn must be correct when run twice at once
// (Exclusive saves work and keeps logs clear; it is not what makes fn safe).
func (d *DB) Exclusive(ctx context.Context, name string, fn func(context.Context) error) error {
	conn, err := pgx.ConnectConfig(ctx, d.listenCfg)
	if err != nil {
		return fmt.Errorf("lock %q: %w", name, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenCloseTimeout)
		defer cancel()
		conn.Close(cctx) // ends the session, and with it the lock
	}()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, "pglink:"+name); err != nil {
		return fmt.Errorf("lock %q: %w", name, err)
	}
	return fn(ctx)
}

// LeaseOperation hands the oldest InProgress operation whose lease is free or expired at now
// (LeaseUntil <= now) to owner until now+dur and increments its Attempts. It returns
// store.ErrNotFound if there is none, found without the writers' lock. The candidate is taken
// with FOR UPDATE SKIP LOCKED: a row
// another transaction holds is passed over, never waited for. (Leases are writes and run one at
// a time like every writer, so among pglink's own transactions none holds an operation row
// when a lease looks; the clause keeps a lease from queueing behind anyone else's lock.)
func (d *DB) LeaseOperation(ctx context.Context, owner, node string, now time.Time, dur time.Duration) (store.Operation, error) {
	if owner == "" {
		return store.Operation{}, errors.New("lease operation: empty owner")
	}
	if dur <= 0 {
		return store.Operation{}, fmt.Errorf("lease operation for %s: lease duration %v is not positive", owner, dur)
	}
	// Workers of every process ask after each commit anywhere; most find nothing. A look
	// outside the writers' lock answers them without holding up writers.
	var leasable bool
	if err := d.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT FROM operations WHERE status = 'InProgress' AND (lease_owner = '' OR lease_until <= $1)
		 AND node IN ('', $2))`,
		now, node).Scan(&leasable); err != nil {
		return store.Operation{}, fmt.Errorf("lease operation for %s: %w", owner, err)
	}
	if !leasable {
		return store.Operation{}, fmt.Errorf("lease operation for %s: %w", owner, store.ErrNotFound)
	}
	var op store.Operation
	err := d.write(ctx, func(t *tx) error {
		var err error
		op, err = scanOperation(t.tx.QueryRow(ctx,
			`SELECT `+operationColumns+` FROM operations
			 WHERE status = 'InProgress' AND (lease_owner = '' OR lease_until <= $1) AND node IN ('', $2)
			 ORDER BY created, id LIMIT 1 FOR UPDATE SKIP LOCKED`, now, node))
		if errors.Is(err, pgx.ErrNoRows) {
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
		if _, err := t.tx.Exec(ctx,
			`UPDATE operations SET lease_owner = $1, lease_until = $2, attempts = $3, revision = $4 WHERE id = $5`,
			op.LeaseOwner, op.LeaseUntil, op.Attempts, op.Revision, op.ID); err != nil {
			return err
		}
		return t.changed(ctx, opKey(op.ID), false)
	})
	if err != nil {
		return store.Operation{}, fmt.Errorf("lease operation for %s: %w", owner, err)
	}
	return op, nil
}

// pruneBatch is how many events one PruneEvents statement removes at most.
const pruneBatch = 5000

// PruneEvents implements store.Store. Events are appended in time order (Seq follows Time up to
// the few seconds a request takes), so the events to remove are those below a cut in Seq: the
// first event at or after before, and the keep-th newest. Each batch is a DELETE of its own,
// outside the writers' lock, so writers are not held up.
func (d *DB) PruneEvents(ctx context.Context, before time.Time, keep int) (int64, error) {
	var total int64
	for {
		var cut int64 // remove seq < cut
		err := d.pool.QueryRow(ctx,
			`SELECT coalesce((SELECT seq FROM events WHERE time >= $1 ORDER BY seq LIMIT 1),
			                 (SELECT coalesce(max(seq), 0) + 1 FROM events))`, before).Scan(&cut)
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		if keep > 0 {
			var byCount int64
			err := d.pool.QueryRow(ctx,
				`SELECT coalesce((SELECT seq FROM events ORDER BY seq DESC OFFSET $1 LIMIT 1), 0)`, keep-1).Scan(&byCount)
			if err != nil {
				return total, fmt.Errorf("prune events: %w", err)
			}
			cut = max(cut, byCount)
		}
		tag, err := d.pool.Exec(ctx,
			`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq < $1 ORDER BY seq LIMIT $2)`, cut, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		n := tag.RowsAffected()
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// Events returns the activity log events q selects, newest first. Each filter has an index on
// (subscription, column, seq) that serves a newest-first scan.
func (d *DB) Events(ctx context.Context, q store.EventQuery) ([]store.Event, error) {
	if q.Subscription == "" {
		return nil, errors.New("list events: no subscription")
	}
	query, args := eventsQuery(q)
	rows, err := d.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", q.Subscription, unavailable(err))
	}
	defer rows.Close()
	var events []store.Event
	for rows.Next() {
		var e store.Event
		if err := rows.Scan(&e.Seq, &e.Time, &e.Subscription, &e.ResourceID, &e.ResourceGroup, &e.Caller,
			&e.CorrelationID, &e.Provider, &e.Status, &e.Body); err != nil {
			return nil, fmt.Errorf("list events of %s: %w", q.Subscription, unavailable(err))
		}
		e.Time = e.Time.UTC()
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events of %s: %w", q.Subscription, unavailable(err))
	}
	return events, nil
}

// eventsQuery returns the SQL and arguments of Events(q).
func eventsQuery(q store.EventQuery) (string, []any) {
	sq := sqlq.New(dialect)
	sq.Events(q)
	return `SELECT seq, time, subscription, resource_key, resource_group, caller, correlation_id, provider, status, body
		 FROM events` + sq.Clause() + ` ORDER BY seq DESC LIMIT ` + sq.Arg(sqlLimit(q.Limit)), sq.Args
}

// dialect is PostgreSQL's for the filters sqlq builds.
var dialect = sqlq.Dialect{Numbered: true, Arrays: true, Time: func(t time.Time) any { return t }, Type: `type_key = %s`}

// Revision returns the latest committed revision; 0 for a new database.
func (d *DB) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := d.pool.QueryRow(ctx, `SELECT value FROM revision`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", unavailable(err))
	}
	return rev, nil
}

// Changes returns the changes with revision > since, ordered by revision and then key, at most
// limit (0 for all). A key written more than once in one transaction appears once, with the
// last write's Deleted. Revisions become visible in order (see "Revision order"), so a reader
// that asks again from the last revision it saw misses none.
func (d *DB) Changes(ctx context.Context, since int64, limit int) ([]store.Change, error) {
	rows, err := d.pool.Query(ctx,
		`SELECT revision, key, deleted FROM changes WHERE revision > $1 ORDER BY revision, key LIMIT $2`,
		since, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list changes since %d: %w", since, unavailable(err))
	}
	defer rows.Close()
	var changes []store.Change
	for rows.Next() {
		var c store.Change
		if err := rows.Scan(&c.Revision, &c.Key, &c.Deleted); err != nil {
			return nil, fmt.Errorf("list changes since %d: %w", since, unavailable(err))
		}
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list changes since %d: %w", since, unavailable(err))
	}
	return changes, nil
}

// Notify returns a channel that receives a value after each commit that wrote something, made
// through any DB on the same database, in this process or another; and once after the
// notification connection is (re)established, since commits made while it was down were not
// heard. A subscriber that does not keep up misses values, never commits: the channel holds one
// value. The channel is closed when ctx is done or d is closed.
func (d *DB) Notify(ctx context.Context) <-chan struct{} { return d.notify.Subscribe(ctx) }

// listen keeps a connection that LISTENs for commits until ctx is done, reconnecting with
// jittered exponential backoff when it is lost.
func (d *DB) listen(ctx context.Context) {
	defer close(d.listenDone)
	wait := reconnectBase
	for {
		err := d.listenOnce(ctx, func() { wait = reconnectBase })
		if ctx.Err() != nil {
			return
		}
		jittered := wait/2 + rand.N(wait/2+1)
		d.logger.Warn("change notifications interrupted; reconnecting", "err", err, "retry_in", jittered)
		select {
		case <-ctx.Done():
			return
		case <-time.After(jittered):
		}
		wait = min(2*wait, reconnectMax)
	}
}

// listenOnce connects, LISTENs, calls connected, signals every subscriber once, then signals
// them on each notification until the connection fails or ctx is done.
func (d *DB) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, d.listenCfg)
	if err != nil {
		return err
	}
	defer func() {
		d.listenPID.Store(0)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenCloseTimeout)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+channel); err != nil {
		return err
	}
	d.listenPID.Store(conn.PgConn().PID())
	connected()
	d.logger.Debug("listening for commits", "pid", conn.PgConn().PID())
	d.notify.Signal() // whatever was committed while no one listened: readers re-read
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		d.notify.Signal()
	}
}

// tx is a store.Tx over one PostgreSQL transaction.
type tx struct {
	tx       *txConn
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
// first write. The transaction holds the lock on table revision (see "Revision order").
func (t *tx) nextRevision(ctx context.Context) (int64, error) {
	if t.revision != 0 {
		return t.revision, nil
	}
	var rev int64
	// The NOTIFY goes out with the commit, and only if the transaction commits.
	if err := t.tx.QueryRow(ctx,
		`UPDATE revision SET value = value + 1 RETURNING value, pg_notify($1, value::text) IS NULL`, channel).Scan(&rev, nil); err != nil {
		return 0, fmt.Errorf("take revision: %w", err)
	}
	t.revision = rev
	return rev, nil
}

// changed records a write of key on the change feed.
func (t *tx) changed(ctx context.Context, key string, deleted bool) error {
	if _, err := t.tx.Exec(ctx,
		`INSERT INTO changes (revision, key, deleted) VALUES ($1, $2, $3)
		 ON CONFLICT (revision, key) DO UPDATE SET deleted = excluded.deleted`,
		t.revision, key, deleted); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	return nil
}

const resourceColumns = `key, id, type, parent, body, etag, revision`

func scanResource(row pgx.Row) (store.Resource, error) {
	var r store.Resource
	err := row.Scan(&r.Key, &r.ID, &r.Type, &r.Parent, &r.Body, &r.ETag, &r.Revision)
	return r, err
}

func (t *tx) Get(ctx context.Context, key string) (store.Resource, error) {
	if err := t.check(false); err != nil {
		return store.Resource{}, fmt.Errorf("get resource %s: %w", key, err)
	}
	r, err := scanResource(t.tx.QueryRow(ctx, `SELECT `+resourceColumns+` FROM resources WHERE key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
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

	rows, err := t.tx.Query(ctx, q, sq.Args...)
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
		err := t.tx.QueryRow(ctx, `SELECT etag FROM resources WHERE key = $1`, r.Key).Scan(&etag)
		if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := t.tx.Exec(ctx,
		`INSERT INTO resources (key, id, type, type_key, parent, body, etag, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		 ON CONFLICT (key) DO UPDATE SET id = excluded.id, type = excluded.type, type_key = excluded.type_key,
		 parent = excluded.parent, body = excluded.body, etag = excluded.etag, revision = excluded.revision`,
		r.Key, r.ID, r.Type, strings.ToLower(r.Type), r.Parent, r.Body, r.ETag, r.Revision); err != nil {
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
	tag, err := t.tx.Exec(ctx, `DELETE FROM resources WHERE key = $1`, key)
	if err != nil {
		return fmt.Errorf("delete resource %s: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
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

func scanOperation(row pgx.Row) (store.Operation, error) {
	var op store.Operation
	err := row.Scan(&op.ID, &op.ResourceKey, &op.ResourceID, &op.Kind, &op.Goal, &op.Status, &op.Input, &op.Error,
		&op.Method, &op.Location, &op.LeaseOwner, &op.LeaseUntil, &op.Attempts, &op.Created, &op.Updated, &op.Revision, &op.Node)
	if err != nil {
		return store.Operation{}, err
	}
	op.LeaseUntil, op.Created, op.Updated = op.LeaseUntil.UTC(), op.Created.UTC(), op.Updated.UTC()
	return op, nil
}

// opKey is an operation's key on the change feed.
func opKey(id string) string { return "op:" + id }

func (t *tx) Operation(ctx context.Context, id string) (store.Operation, error) {
	if err := t.check(false); err != nil {
		return store.Operation{}, fmt.Errorf("get operation %s: %w", id, err)
	}
	op, err := scanOperation(t.tx.QueryRow(ctx, `SELECT `+operationColumns+` FROM operations WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	op, err := scanOperation(t.tx.QueryRow(ctx,
		`SELECT `+operationColumns+` FROM operations WHERE resource_key = $1 AND status = 'InProgress'`, resourceKey))
	if errors.Is(err, pgx.ErrNoRows) {
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
		err := t.tx.QueryRow(ctx,
			`SELECT id FROM operations WHERE resource_key = $1 AND status = 'InProgress' AND id <> $2`,
			op.ResourceKey, op.ID).Scan(&other)
		if err == nil {
			return store.Operation{}, fmt.Errorf("put operation %s: operation %s is in progress on %s: %w",
				op.ID, other, op.ResourceKey, store.ErrConflict)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := t.tx.Exec(ctx,
		`INSERT INTO operations (`+operationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		 ON CONFLICT (id) DO UPDATE SET resource_key = excluded.resource_key, resource_id = excluded.resource_id,
		 kind = excluded.kind, goal = excluded.goal, status = excluded.status, input = excluded.input,
		 error = excluded.error, method = excluded.method, location = excluded.location,
		 lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, attempts = excluded.attempts,
		 created = excluded.created, updated = excluded.updated, revision = excluded.revision, node = excluded.node`,
		op.ID, op.ResourceKey, op.ResourceID, op.Kind, op.Goal, op.Status, op.Input, op.Error, op.Method,
		op.Location, op.LeaseOwner, op.LeaseUntil, op.Attempts, op.Created, op.Updated, op.Revision, op.Node); err != nil {
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
	if _, err := t.tx.Exec(ctx,
		`INSERT INTO events (time, subscription, resource_key, resource_group, caller, correlation_id, provider, status, body)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.Time, strings.ToLower(e.Subscription), strings.ToLower(e.ResourceID), strings.ToLower(e.ResourceGroup),
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
	// An object id match wins over a login match.
	err := t.tx.QueryRow(ctx,
		`SELECT object_id, login, body FROM principals WHERE object_key = $1 OR login_key = $1
		 ORDER BY object_key = $1 DESC LIMIT 1`,
		strings.ToLower(idOrLogin)).Scan(&p.ObjectID, &p.Login, &p.Body)
	if errors.Is(err, pgx.ErrNoRows) {
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
	objectKey, loginKey := strings.ToLower(p.ObjectID), strings.ToLower(p.Login)
	var other string
	err := t.tx.QueryRow(ctx,
		`SELECT object_id FROM principals WHERE login_key = $1 AND object_key <> $2`, loginKey, objectKey).Scan(&other)
	if err == nil {
		return fmt.Errorf("put principal %s: login %s belongs to %s: %w", p.ObjectID, p.Login, other, store.ErrConflict)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	if _, err := t.nextRevision(ctx); err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	if _, err := t.tx.Exec(ctx,
		`INSERT INTO principals (object_key, object_id, login, login_key, body) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (object_key) DO UPDATE SET object_id = excluded.object_id, login = excluded.login,
		 login_key = excluded.login_key, body = excluded.body`,
		objectKey, p.ObjectID, p.Login, loginKey, p.Body); err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	return nil
}

func (t *tx) Principals(ctx context.Context, after string, limit int) ([]store.Principal, error) {
	if err := t.check(false); err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	rows, err := t.tx.Query(ctx,
		`SELECT object_id, login, body FROM principals WHERE object_key > $1 ORDER BY object_key LIMIT $2`,
		strings.ToLower(after), sqlLimit(limit))
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
	tag, err := t.tx.Exec(ctx, `DELETE FROM principals WHERE object_key = $1`, strings.ToLower(objectID))
	if err != nil {
		return fmt.Errorf("delete principal %s: %w", objectID, err)
	}
	if tag.RowsAffected() == 0 {
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
	err := t.tx.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := t.tx.Exec(ctx,
		`INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
		name, value); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	if err := t.changed(ctx, "setting:"+name, false); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	return nil
}

// normTime returns t as the store gives it back: UTC, without a monotonic clock reading, to the
// microsecond (PostgreSQL's precision; pgx truncates).
func normTime(t time.Time) time.Time { return t.Round(0).UTC().Truncate(time.Microsecond) }

// sqlLimit turns a limit where 0 means none into SQL's, where NULL does.
func sqlLimit(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}

// newETag returns a fresh opaque ETag: a random UUID in quotes, as Azure writes them.
func newETag() string {
	var b [16]byte
	crand.Read(b[:]) // never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf(`"%x-%x-%x-%x-%x"`, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// PutNode implements store.Store. It takes neither the writers' lock nor a revision.
func (d *DB) PutNode(ctx context.Context, n store.Node) error {
	if n.Name == "" {
		return errors.New("put node: empty name")
	}
	_, err := d.pool.Exec(ctx,
		`INSERT INTO nodes (name, zone, network, endpoint, address, applied, started, heartbeat, expires)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		 ON CONFLICT (name) DO UPDATE SET zone = excluded.zone, network = excluded.network,
		 endpoint = excluded.endpoint, address = excluded.address, applied = greatest(nodes.applied, excluded.applied),
		 started = excluded.started, heartbeat = excluded.heartbeat, expires = excluded.expires`,
		n.Name, n.Zone, n.Network, n.Endpoint, n.Address, n.Applied, normTime(n.Started), normTime(n.Heartbeat), normTime(n.Expires))
	if err != nil {
		return fmt.Errorf("put node %s: %w", n.Name, unavailable(err))
	}
	return nil
}

// Nodes implements store.Store.
func (d *DB) Nodes(ctx context.Context) ([]store.Node, error) { return nodes(ctx, d.pool) }

// Nodes implements store.Tx.
func (t *tx) Nodes(ctx context.Context) ([]store.Node, error) {
	if err := t.check(false); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes(ctx, t.tx)
}

func nodes(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]store.Node, error) {
	rows, err := q.Query(ctx,
		`SELECT name, zone, network, endpoint, address, applied, started, heartbeat, expires FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Node, error) {
		var n store.Node
		err := row.Scan(&n.Name, &n.Zone, &n.Network, &n.Endpoint, &n.Address, &n.Applied, &n.Started, &n.Heartbeat, &n.Expires)
		n.Started, n.Heartbeat, n.Expires = normTime(n.Started), normTime(n.Heartbeat), normTime(n.Expires)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", unavailable(err))
	}
	return out, nil
}

// DeleteNode implements store.Tx.
func (t *tx) DeleteNode(ctx context.Context, name string) error {
	if err := t.check(true); err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	tag, err := t.tx.Exec(ctx, `DELETE FROM nodes WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete node %s: %w", name, unavailable(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete node %s: %w", name, store.ErrNotFound)
	}
	if _, err := t.tx.Exec(ctx, `UPDATE operations SET node = '' WHERE node = $1 AND status = 'InProgress'`, name); err != nil {
		return fmt.Errorf("release the operations of node %s: %w", name, unavailable(err))
	}
	return nil
}
