package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/storetest"
)

// cluster is the PostgreSQL cluster of this test binary, started once in TestMain; each test
// gets a database of its own (newDatabase). clusterErr says why there is none.
var (
	cluster    *pgtest.Cluster
	clusterErr error
)

func TestMain(m *testing.M) {
	cluster, clusterErr = pgtest.Start()
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
		}
	}
	os.Exit(code)
}

// newDatabase returns the URL of a new, empty database, dropped when t ends.
func newDatabase(t *testing.T) string {
	t.Helper()
	pgtest.Require(t, clusterErr)
	return cluster.CreateDatabase(t)
}

// open opens the store in the database at url and closes it when t ends.
func open(t *testing.T, url string) *DB {
	t.Helper()
	db, err := Open(t.Context(), url, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("Open(%s) = %v; want nil", Redacted(url), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, newDatabase(t)) })
}

func TestRedacted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://pglink:s3cret@db.example.com:5432/pglink?sslmode=verify-full",
			"postgres://pglink:xxxxx@db.example.com:5432/pglink?sslmode=verify-full"},
		{"postgresql://pglink:s3cret@db/pglink", "postgresql://pglink:xxxxx@db/pglink"},
		{"postgres://pglink@db/pglink", "postgres://pglink@db/pglink"},
		{"postgres:///pglink?host=/run/postgresql&password=s3cret", "postgres:///pglink?host=%2Frun%2Fpostgresql&password=xxxxx"},
		{"host=db user=pglink password=s3cret", "(connection string)"},
		{"%zz:s3cret", "(connection string)"},
	}
	for _, tt := range tests {
		if got := Redacted(tt.in); got != tt.want {
			t.Errorf("Redacted(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestOpenErrorsHidePassword: neither a connection string pgx cannot parse nor a failed
// connection puts the password in the error.
func TestOpenErrorsHidePassword(t *testing.T) {
	for _, url := range []string{
		"postgres://u:s3cret@h:notaport/db",
		"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=5",
	} {
		db, err := Open(t.Context(), url, nil)
		if err == nil {
			db.Close()
			t.Errorf("Open(%s) = nil; want an error", Redacted(url))
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s) = %v; want an error without the password", Redacted(url), err)
		}
	}
}

// TestReopen closes a store and opens it again: everything is still there, the schema is not
// migrated twice and revisions continue.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	url := newDatabase(t)
	db := open(t, url)
	created := time.Date(2030, 1, 1, 0, 0, 0, 123456000, time.UTC)
	var put store.Resource
	err := db.Update(ctx, func(tx store.Tx) error {
		var err error
		put, err = tx.Put(ctx, store.Resource{Key: "/subscriptions/s", ID: "/subscriptions/S", Body: []byte(`{}`)}, "")
		if err != nil {
			return err
		}
		if _, err := tx.PutOperation(ctx, store.Operation{ID: "op1", ResourceKey: put.Key, Status: store.OpInProgress,
			Created: created}); err != nil {
			return err
		}
		if err := tx.AppendEvent(ctx, store.Event{Time: time.Now(), Subscription: "s", Body: []byte(`{}`)}); err != nil {
			return err
		}
		return tx.PutPrincipal(ctx, store.Principal{ObjectID: "o", Login: "a@example.com"})
	})
	if err != nil {
		t.Fatalf("Update = %v; want nil", err)
	}
	db.Close()

	for i := range 2 {
		db := open(t, url)
		err := db.View(ctx, func(tx store.Tx) error {
			got, err := tx.Get(ctx, put.Key)
			if err != nil {
				return err
			}
			if got.ETag != put.ETag || got.Revision != put.Revision || got.ID != put.ID {
				t.Errorf("reopen %d: Get = %+v; want %+v", i, got, put)
			}
			op, err := tx.Operation(ctx, "op1")
			if err != nil {
				return err
			}
			if op.Created != created || !op.LeaseUntil.IsZero() {
				t.Errorf("reopen %d: Operation.Created, LeaseUntil = %v, %v; want %v, zero", i, op.Created, op.LeaseUntil, created)
			}
			_, err = tx.Principal(ctx, "A@example.com")
			return err
		})
		if err != nil {
			t.Fatalf("reopen %d: View = %v; want nil", i, err)
		}
		if ev, err := db.Events(ctx, store.EventQuery{Subscription: "s"}); err != nil || len(ev) != 1 {
			t.Errorf("reopen %d: Events = %d events, %v; want 1, nil", i, len(ev), err)
		}
		var version int
		if err := db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&version); err != nil || version != SchemaVersion() {
			t.Errorf("reopen %d: schema_version = %d, %v; want %d", i, version, err, SchemaVersion())
		}
		if rev, err := db.Revision(ctx); err != nil || rev != put.Revision+int64(i) {
			t.Errorf("reopen %d: Revision = %d, %v; want %d", i, rev, err, put.Revision+int64(i))
		}
		err = db.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, store.Resource{Key: "/subscriptions/t"}, "")
			return err
		})
		if err != nil {
			t.Fatalf("reopen %d: Update = %v; want nil", i, err)
		}
		db.Close()
	}
}

// TestOpenTogether: processes that start together on an empty database migrate it once.
func TestOpenTogether(t *testing.T) {
	url := newDatabase(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			db, err := Open(t.Context(), url, nil)
			if err != nil {
				t.Errorf("Open %d = %v; want nil", i, err)
				return
			}
			db.Close()
		})
	}
	wg.Wait()
	db := open(t, url)
	if rev, err := db.Revision(t.Context()); err != nil || rev != 0 {
		t.Errorf("Revision = %d, %v; want 0, nil", rev, err)
	}
}

func TestNewerSchema(t *testing.T) {
	url := newDatabase(t)
	db := open(t, url)
	if _, err := db.pool.Exec(t.Context(), `UPDATE meta SET value = 99 WHERE name = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(t.Context(), url, nil)
	if err == nil {
		db.Close()
		t.Fatalf("Open(schema version 99) = nil; want an error")
	}
	for _, want := range []string{"newer", "99", fmt.Sprintf("pglink's %d", SchemaVersion())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(schema version 99) = %v; want an error that says %q", err, want)
		}
	}
}

func TestClose(t *testing.T) {
	db := open(t, newDatabase(t))
	ch := db.Notify(t.Context())
	if err := db.Close(); err != nil {
		t.Fatalf("Close = %v; want nil", err)
	}
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("Notify channel not closed by Close")
		}
	}
	if _, ok := <-db.Notify(t.Context()); ok {
		t.Errorf("Notify after Close received a value; want a closed channel")
	}
	if err := db.Update(t.Context(), func(store.Tx) error { return nil }); err == nil {
		t.Errorf("Update after Close = nil; want an error")
	}
}

func TestTxAfterReturn(t *testing.T) {
	db := open(t, newDatabase(t))
	var kept store.Tx
	if err := db.Update(t.Context(), func(tx store.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatalf("Update = %v; want nil", err)
	}
	if _, err := kept.Put(t.Context(), store.Resource{Key: "/subscriptions/s"}, ""); !errors.Is(err, errTxDone) {
		t.Errorf("Put after Update returned = %v; want %v", err, errTxDone)
	}
}

// TestRollbackOnPanic checks a panicking fn rolls back and releases the writers' lock.
func TestRollbackOnPanic(t *testing.T) {
	db := open(t, newDatabase(t))
	func() {
		defer func() { recover() }()
		db.Update(t.Context(), func(tx store.Tx) error {
			tx.Put(t.Context(), store.Resource{Key: "/subscriptions/s"}, "")
			panic("boom")
		})
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := db.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Get(ctx, "/subscriptions/s")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update after a panic = %v; want ErrNotFound", err)
	}
}

// TestRetry: Update runs fn again after a serialization failure or a deadlock, and gives up,
// saying so, when they go on.
func TestRetry(t *testing.T) {
	db := open(t, newDatabase(t))
	for _, code := range []string{"40001", "40P01"} {
		t.Run(code, func(t *testing.T) {
			key := "/subscriptions/" + code
			calls := 0
			err := db.Update(t.Context(), func(tx store.Tx) error {
				calls++
				if _, err := tx.Put(t.Context(), store.Resource{Key: key}, ""); err != nil {
					return err
				}
				if calls < 3 {
					return fmt.Errorf("something: %w", &pgconn.PgError{Code: code})
				}
				return nil
			})
			if err != nil || calls != 3 {
				t.Errorf("Update(fails twice with %s) = %v after %d calls; want nil after 3", code, err, calls)
			}
			if _, err := storeGet(t, db, key); err != nil {
				t.Errorf("Get(%q) after the retried Update = %v; want nil", key, err)
			}

			calls = 0
			err = db.Update(t.Context(), func(tx store.Tx) error {
				calls++
				return &pgconn.PgError{Code: code}
			})
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != code || !strings.Contains(err.Error(), "giving up") || calls != maxAttempts {
				t.Errorf("Update(always fails with %s) = %v after %d calls; want an error that gives up, wraps %s, after %d",
					code, err, calls, code, maxAttempts)
			}
		})
	}
	// Other errors are not retried.
	calls := 0
	err := db.Update(t.Context(), func(tx store.Tx) error {
		calls++
		return &pgconn.PgError{Code: "23505"}
	})
	if err == nil || calls != 1 {
		t.Errorf("Update(unique violation) = %v after %d calls; want the error after 1", err, calls)
	}
}

func storeGet(t *testing.T, s store.Store, key string) (store.Resource, error) {
	t.Helper()
	var r store.Resource
	err := s.View(t.Context(), func(tx store.Tx) error {
		var err error
		r, err = tx.Get(t.Context(), key)
		return err
	})
	return r, err
}

// TestRevisionOrderAcrossPools: writers in several stores (pools, as if several processes)
// commit concurrently while a reader in another follows the change feed. The reader sees every
// committed revision exactly once, in order, with no gap; writers never fail each other.
func TestRevisionOrderAcrossPools(t *testing.T) {
	url := newDatabase(t)
	const writers, each = 6, 40
	dbs := make([]*DB, writers)
	for i := range dbs {
		dbs[i] = open(t, url)
	}
	reader := open(t, url)

	var (
		mu        sync.Mutex
		committed []int64
	)
	stop := make(chan struct{})
	var seen []store.Change
	readerDone := make(chan error, 1)
	go func() {
		var since int64
		for {
			last := false
			select {
			case <-stop:
				last = true // one more read after every writer returned
			default:
			}
			cs, err := reader.Changes(context.Background(), since, 7)
			if err != nil {
				readerDone <- err
				return
			}
			// A page may end inside a revision: keep only whole revisions and ask again
			// from the last of them, as a follower of the feed does.
			if len(cs) == 7 && cs[0].Revision != cs[len(cs)-1].Revision {
				for cs[len(cs)-1].Revision == cs[len(cs)-2].Revision {
					cs = cs[:len(cs)-1]
				}
				cs = cs[:len(cs)-1]
			}
			seen = append(seen, cs...)
			if len(cs) > 0 {
				since = cs[len(cs)-1].Revision
			}
			if last && len(cs) == 0 {
				readerDone <- nil
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for w, db := range dbs {
		wg.Go(func() {
			for i := range each {
				var rev int64
				err := db.Update(t.Context(), func(tx store.Tx) error {
					// Read something another writer writes, to give SERIALIZABLE a chance to object.
					if _, err := tx.Get(t.Context(), "/subscriptions/shared"); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					r, err := tx.Put(t.Context(), store.Resource{Key: fmt.Sprintf("/subscriptions/w%d/r%d", w, i)}, "")
					if err != nil {
						return err
					}
					if _, err := tx.Put(t.Context(), store.Resource{Key: "/subscriptions/shared"}, ""); err != nil {
						return err
					}
					rev = r.Revision
					return nil
				})
				if err != nil {
					t.Errorf("writer %d, write %d: Update = %v; want nil", w, i, err)
					return
				}
				mu.Lock()
				committed = append(committed, rev)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("Changes = %v; want nil", err)
	}

	slices.Sort(committed)
	if len(committed) != writers*each {
		t.Fatalf("%d commits; want %d", len(committed), writers*each)
	}
	// Every change once, in (revision, key) order; each revision carries two.
	var revs []int64
	for i, c := range seen {
		if i > 0 && (c.Revision < seen[i-1].Revision || c.Revision == seen[i-1].Revision && c.Key <= seen[i-1].Key) {
			t.Fatalf("the change feed gave %+v after %+v; want each change once, in order", c, seen[i-1])
		}
		if i == 0 || c.Revision != seen[i-1].Revision {
			revs = append(revs, c.Revision)
		}
	}
	if len(seen) != 2*len(committed) {
		t.Errorf("the change feed gave %d changes; want %d", len(seen), 2*len(committed))
	}
	if !slices.Equal(revs, committed) {
		t.Errorf("the change feed saw revisions %v; want those committed, %v", revs, committed)
	}
	for i := 1; i < len(committed); i++ {
		if committed[i] != committed[i-1]+1 {
			t.Errorf("committed revisions jump from %d to %d; want consecutive", committed[i-1], committed[i])
			break
		}
	}
	var retries int64
	for _, db := range dbs {
		retries += db.retries.Load()
	}
	// The lock precedes the snapshot, so writers almost never conflict; a snapshot taken first
	// would have most of them retry. A rare retry is PostgreSQL's window between releasing a
	// committer's locks and marking it committed for SSI (see "Revision order").
	if retries > writers*each/20 {
		t.Errorf("writers retried %d times in %d writes; want at most %d (the revision lock precedes the snapshot)", retries, writers*each, writers*each/20)
	}
}

// TestLeaseAcrossPools: leasers in separate stores (pools) never get the same operation.
func TestLeaseAcrossPools(t *testing.T) {
	url := newDatabase(t)
	const ops, leasers = 60, 6
	db := open(t, url)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	err := db.Update(t.Context(), func(tx store.Tx) error {
		for i := range ops {
			if _, err := tx.PutOperation(t.Context(), store.Operation{ID: fmt.Sprintf("op%02d", i),
				ResourceKey: fmt.Sprintf("k%02d", i), Status: store.OpInProgress, Created: now.Add(time.Duration(i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("PutOperation × %d = %v; want nil", ops, err)
	}
	var (
		mu    sync.Mutex
		owner = map[string]string{}
	)
	var wg sync.WaitGroup
	for l := range leasers {
		s := open(t, url)
		name := fmt.Sprintf("replica%d", l)
		wg.Go(func() {
			for {
				op, err := s.LeaseOperation(t.Context(), name, "", now, time.Hour)
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					t.Errorf("LeaseOperation(%s) = %v; want nil", name, err)
					return
				}
				mu.Lock()
				prev, dup := owner[op.ID]
				owner[op.ID] = name
				mu.Unlock()
				if dup {
					t.Errorf("LeaseOperation(%s) = %s, already leased to %s", name, op.ID, prev)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(owner) != ops {
		t.Errorf("leased %d operations; want %d", len(owner), ops)
	}
	for id, name := range owner {
		var op store.Operation
		err := db.View(t.Context(), func(tx store.Tx) error {
			var err error
			op, err = tx.Operation(t.Context(), id)
			return err
		})
		if err != nil || op.LeaseOwner != name || op.Attempts != 1 {
			t.Errorf("Operation(%s) = owner %q, attempts %d, %v; want %s, 1", id, op.LeaseOwner, op.Attempts, err, name)
		}
	}
}

// TestLeaseSkipsLockedRows: an operation row locked by another transaction (here, a session
// outside pglink) is passed over, not waited for.
func TestLeaseSkipsLockedRows(t *testing.T) {
	url := newDatabase(t)
	db := open(t, url)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"locked", "free"} {
		err := db.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.PutOperation(t.Context(), store.Operation{ID: id, ResourceKey: id, Status: store.OpInProgress,
				Created: now.Add(time.Duration(i) * time.Second)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	other, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.Background())
	if _, err := other.Exec(t.Context(), `SELECT 1 FROM operations WHERE id = 'locked' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	op, err := db.LeaseOperation(ctx, "w1", "", now, time.Minute)
	if err != nil || op.ID != "free" {
		t.Errorf("LeaseOperation while the oldest is locked = %q, %v; want free, nil", op.ID, err)
	}
}

// TestExclusive: processes (stores) that share a database run an Exclusive function one at a
// time, and another name is not held up.
func TestExclusive(t *testing.T) {
	url := newDatabase(t)
	var running, most atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		db := open(t, url)
		wg.Go(func() {
			err := db.Exclusive(t.Context(), "first start", func(ctx context.Context) error {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(50 * time.Millisecond)
				// fn may use the store.
				return db.Update(ctx, func(tx store.Tx) error {
					_, err := tx.Put(ctx, store.Resource{Key: fmt.Sprintf("/subscriptions/s%d", i)}, "")
					return err
				})
			})
			if err != nil {
				t.Errorf("Exclusive %d = %v; want nil", i, err)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Errorf("at most %d Exclusive functions ran at once; want 1", m)
	}

	// While one holds "a", "b" is free, and "a" waits.
	db := open(t, url)
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Exclusive(t.Context(), "a", func(context.Context) error { close(held); <-release; return nil })
	}()
	<-held
	if err := db.Exclusive(t.Context(), "b", func(context.Context) error { return nil }); err != nil {
		t.Errorf("Exclusive(b) while a is held = %v; want nil", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := db.Exclusive(ctx, "a", func(context.Context) error { return nil }); err == nil {
		t.Errorf("Exclusive(a) while a is held = nil; want it to wait until ctx is done")
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("Exclusive(a) = %v; want nil", err)
	}
	if err := db.Exclusive(t.Context(), "a", func(context.Context) error { return nil }); err != nil {
		t.Errorf("Exclusive(a) once released = %v; want nil", err)
	}
}

// TestIdleLeaseTakesNoLock: a LeaseOperation that finds nothing to lease does not wait for the
// writers' lock, so the workers of every process, which ask after each commit, do not hold up
// writers.
func TestIdleLeaseTakesNoLock(t *testing.T) {
	url := newDatabase(t)
	db := open(t, url)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	err := db.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.PutOperation(t.Context(), store.Operation{ID: "leased", ResourceKey: "k", Status: store.OpInProgress,
			LeaseOwner: "w0", LeaseUntil: now.Add(time.Hour), Created: now})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	writer, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Rollback(context.Background())
	if _, err := writer.Exec(t.Context(), `LOCK TABLE revision IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := db.LeaseOperation(ctx, "w1", "", now, time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LeaseOperation with nothing to lease while a writer holds the lock = %v; want ErrNotFound at once", err)
	}
	// With something to lease, it waits for the writer.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	if op, err := db.LeaseOperation(ctx2, "w1", "", now.Add(2*time.Hour), time.Minute); err == nil {
		t.Errorf("LeaseOperation of an expired lease while a writer holds the lock = %s; want it to wait", op.ID)
	}
}

// TestNotifyAcrossStores: a commit through one store wakes the Notify channels of another on the
// same database; when the other's notification connection is killed, it reconnects, signals
// once, and hears commits again.
func TestNotifyAcrossStores(t *testing.T) {
	url := newDatabase(t)
	a, b := open(t, url), open(t, url)
	ch := b.Notify(t.Context())
	waitListening(t, b)
	drainAll(ch)

	commit := func(i int) {
		t.Helper()
		err := a.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.Put(t.Context(), store.Resource{Key: fmt.Sprintf("/subscriptions/s%d", i)}, "")
			return err
		})
		if err != nil {
			t.Fatalf("Update = %v; want nil", err)
		}
	}
	commit(1)
	receiveWithin(t, ch, 10*time.Second, "in store b after a commit in store a")

	// A read-only Update notifies no one.
	drainAll(ch)
	if err := a.Update(t.Context(), func(tx store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Errorf("Notify in store b after an Update that wrote nothing: got a value; want none")
	case <-time.After(300 * time.Millisecond):
	}

	for round := range 2 {
		pid := b.listenPID.Load()
		if _, err := a.pool.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, int32(pid)); err != nil {
			t.Fatalf("pg_terminate_backend(%d) = %v", pid, err)
		}
		// The reconnection signals once, so readers re-read what they may have missed.
		receiveWithin(t, ch, 10*time.Second, fmt.Sprintf("round %d: after the listener was killed", round))
		deadline := time.Now().Add(10 * time.Second)
		for p := b.listenPID.Load(); p == 0 || p == pid; p = b.listenPID.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: store b did not reconnect its listener within 10s", round)
			}
			time.Sleep(10 * time.Millisecond)
		}
		drainAll(ch)
		commit(10 + round)
		receiveWithin(t, ch, 10*time.Second, fmt.Sprintf("round %d: in store b after a commit, once it reconnected", round))
	}
}

// waitListening waits until db's notification connection listens.
func waitListening(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.listenPID.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the store did not listen for commits within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func drainAll(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func receiveWithin(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("Notify channel closed; want a value %s", what)
		}
	case <-time.After(d):
		t.Fatalf("no notification %s within %v", what, d)
	}
}

// TestEventsUseIndexes: with many events, each activity log filter is answered through an
// index, never a scan of the whole table.
func TestEventsUseIndexes(t *testing.T) {
	db := open(t, newDatabase(t))
	ctx := t.Context()
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// 20,000 events in 4 subscriptions, 200 resources, 20 groups, 50 callers.
	if _, err := db.pool.Exec(ctx, `
		INSERT INTO events (time, subscription, resource_key, resource_group, caller, correlation_id, provider, status, body)
		SELECT $1::timestamptz + i * interval '1 second', 's' || (i % 4), '/subscriptions/s' || (i % 4) || '/x' || (i % 200),
		       'rg' || (i % 20), 'u' || (i % 50) || '@example.com', 'c' || i, 'microsoft.network', 'succeeded', '\x7b7d'
		FROM generate_series(1, 20000) AS i`, since); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.EventQuery{
		{Subscription: "s1", Limit: 101},
		{Subscription: "s1", Since: since, Limit: 101},
		{Subscription: "s1", Since: since, Before: 500, Limit: 101},
		{Subscription: "s1", Since: since, ResourceID: "/subscriptions/s1/x5", Limit: 101},
		{Subscription: "s1", Since: since, ResourceID: "/subscriptions/s1/x5", Subtree: true, Limit: 101},
		{Subscription: "s1", Since: since, ResourceGroup: "rg3", Limit: 101},
		{Subscription: "s1", Since: since, Caller: "u7@example.com", Limit: 101},
		{Subscription: "s1", Since: since, CorrelationID: "c9", Limit: 101},
		{Subscription: "s1", Status: "succeeded", Provider: "microsoft.network", Limit: 101},
	} {
		query, args := eventsQuery(q)
		rows, err := db.pool.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, strings.TrimSpace(line))
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if strings.Contains(joined, "Seq Scan") || !strings.Contains(joined, "Index") {
			t.Errorf("plan of Events(%+v) = %q; want an index scan, no sequential scan", q, joined)
		}
		if _, err := db.Events(ctx, q); err != nil {
			t.Errorf("Events(%+v) = %v; want nil", q, err)
		}
	}
	// Paging by Seq through one filter sees each event once.
	var before int64
	n := 0
	for {
		page, err := db.Events(ctx, store.EventQuery{Subscription: "s2", ResourceGroup: "rg2", Before: before, Limit: 64})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		n += len(page)
		before = page[len(page)-1].Seq
	}
	if want := 20000 / 20; n != want {
		t.Errorf("paging Events(s2, rg2) saw %d events; want %d", n, want)
	}
}

// TestSessionSettings: pglink's sessions name themselves and end a transaction left idle (a
// writer cut off while it holds the writers' lock), unless the URL says otherwise.
func TestSessionSettings(t *testing.T) {
	url := newDatabase(t)
	for _, tt := range []struct {
		url           string
		name, timeout string
	}{
		{url, "pglink", "1min"},
		{url + "&application_name=replica1&idle_in_transaction_session_timeout=5000", "replica1", "5s"},
	} {
		db := open(t, tt.url)
		var name, timeout string
		err := db.pool.QueryRow(t.Context(),
			`SELECT current_setting('application_name'), current_setting('idle_in_transaction_session_timeout')`).Scan(&name, &timeout)
		if err != nil || name != tt.name || timeout != tt.timeout {
			t.Errorf("Open(%s): application_name, idle_in_transaction_session_timeout = %q, %q, %v; want %q, %q",
				Redacted(tt.url), name, timeout, err, tt.name, tt.timeout)
		}
	}
}

// TestPruneEventsInBatches: pruning more events than one batch removes them all, batch after
// batch, and keeps the newest.
func TestPruneEventsInBatches(t *testing.T) {
	db := open(t, newDatabase(t))
	ctx := t.Context()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 2*pruneBatch + 123
	if _, err := db.pool.Exec(ctx, `
		INSERT INTO events (time, subscription, resource_key, resource_group, caller, correlation_id, provider, status, body)
		SELECT $1::timestamptz + i * interval '1 second', 's1', '', '', '', '', '', '', NULL
		FROM generate_series(1, $2::int) AS i`, start, n); err != nil {
		t.Fatal(err)
	}
	const keep = 100
	if got, err := db.PruneEvents(ctx, start, keep); err != nil || got != n-keep {
		t.Errorf("PruneEvents(keep %d of %d) = %d, %v; want %d, nil", keep, n, got, err, n-keep)
	}
	evs, err := db.Events(ctx, store.EventQuery{Subscription: "s1"})
	if err != nil || len(evs) != keep || !evs[0].Time.Equal(start.Add(n*time.Second)) {
		t.Errorf("Events after pruning = %d events, %v; want the newest %d", len(evs), err, keep)
	}
}

// BenchmarkUpdate measures writers in parallel: each Update puts one resource. Writers run one
// at a time (the writers' lock), so this is the store's commit rate.
func BenchmarkUpdate(b *testing.B) {
	pgtest.Require(b, clusterErr)
	db, err := Open(b.Context(), cluster.CreateDatabase(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("/subscriptions/s/r%d", n.Add(1))
			err := db.Update(b.Context(), func(tx store.Tx) error {
				_, err := tx.Put(b.Context(), store.Resource{Key: key, Body: []byte(`{}`)}, "")
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkView measures reads in parallel: each View gets one resource.
func BenchmarkView(b *testing.B) {
	pgtest.Require(b, clusterErr)
	db, err := Open(b.Context(), cluster.CreateDatabase(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	key := "/subscriptions/s"
	if err := db.Update(b.Context(), func(tx store.Tx) error {
		_, err := tx.Put(b.Context(), store.Resource{Key: key, Body: []byte(`{}`)}, "")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.View(b.Context(), func(tx store.Tx) error {
				_, err := tx.Get(b.Context(), key)
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestViewBeginsWithFirstStatement: a View's BEGIN goes with its first statement and its
// rollback comes after it returns. The snapshot is still taken at the first statement and held
// to the end, a failed first statement leaves the transaction usable, and every connection is
// back in the pool, out of its transaction, once the rollbacks are done.
func TestViewBeginsWithFirstStatement(t *testing.T) {
	url := newDatabase(t)
	db := open(t, url)
	const key, other = "/subscriptions/s", "/subscriptions/t"
	put := func(k string) {
		t.Helper()
		if err := db.Update(t.Context(), func(tx store.Tx) error {
			_, err := tx.Put(t.Context(), store.Resource{Key: k, Body: []byte(`{}`)}, "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(key)
	err := db.View(t.Context(), func(tx store.Tx) error {
		if _, err := tx.Get(t.Context(), other); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("first Get(%s) = %v; want ErrNotFound", other, err)
		}
		put(other) // after the snapshot: not seen
		if _, err := tx.Get(t.Context(), key); err != nil {
			t.Errorf("Get(%s) = %v; want nil", key, err)
		}
		if _, err := tx.Get(t.Context(), other); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) committed after the View's first statement = %v; want ErrNotFound", other, err)
		}
		list, err := tx.List(t.Context(), store.ListOptions{})
		if err != nil || len(list) != 1 {
			t.Errorf("List = %d resources, %v; want 1, nil", len(list), err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View = %v; want nil", err)
	}
	if err := db.View(t.Context(), func(store.Tx) error { return nil }); err != nil {
		t.Fatalf("View without statements = %v; want nil", err)
	}
	// A List as the first statement, read to the end.
	err = db.View(t.Context(), func(tx store.Tx) error {
		list, err := tx.List(t.Context(), store.ListOptions{})
		if err != nil || len(list) != 2 {
			t.Errorf("List = %d resources, %v; want 2, nil", len(list), err)
		}
		_, err = tx.Get(t.Context(), other)
		return err
	})
	if err != nil {
		t.Fatalf("View = %v; want nil", err)
	}

	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for {
		var inTx int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`).Scan(&inTx); err != nil {
			t.Fatal(err)
		}
		st := db.pool.Stat()
		if inTx == 0 && st.AcquiredConns() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the Views: %d sessions idle in a transaction, %d connections acquired; want 0 and 0", inTx, st.AcquiredConns())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
