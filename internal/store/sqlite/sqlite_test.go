package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/storetest"
)

func open(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("Open(%q) = %v; want nil", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "pglink.db"))
	})
}

func TestPragmas(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "pglink.db"))
	tests := []struct {
		pool   *sql.DB
		pragma string
		want   string
	}{
		{db.write, "journal_mode", "wal"},
		{db.write, "synchronous", "2"}, // FULL
		{db.write, "busy_timeout", "10000"},
		{db.read, "journal_mode", "wal"},
		{db.read, "query_only", "1"},
	}
	for _, tt := range tests {
		var got string
		if err := tt.pool.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s = %v; want nil", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q; want %q", tt.pragma, got, tt.want)
		}
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if db, err := Open(t.Context(), path, nil); err == nil {
			db.Close()
			t.Errorf("Open(%q) = nil; want an error", path)
		}
	}
}

// TestReopen closes a database and opens it again: everything is still there, the schema is not
// migrated twice and revisions continue.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pglink.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open = %v; want nil", err)
	}
	var put store.Resource
	err = db.Update(ctx, func(tx store.Tx) error {
		var err error
		put, err = tx.Put(ctx, store.Resource{Key: "/subscriptions/s", ID: "/subscriptions/S", Body: []byte(`{}`)}, "")
		if err != nil {
			return err
		}
		if _, err := tx.PutOperation(ctx, store.Operation{ID: "op1", ResourceKey: put.Key, Status: store.OpInProgress,
			Created: time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)}); err != nil {
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
	if err := db.Close(); err != nil {
		t.Fatalf("Close = %v; want nil", err)
	}

	for i := range 2 {
		db := open(t, path)
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
			if want := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC); op.Created != want {
				t.Errorf("reopen %d: Operation.Created = %v; want %v", i, op.Created, want)
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
		if err := db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&version); err != nil || version != len(migrations) {
			t.Errorf("reopen %d: schema_version = %d, %v; want %d", i, version, err, len(migrations))
		}
		rev, err := db.Revision(ctx)
		if err != nil || rev != put.Revision+int64(i) {
			t.Errorf("reopen %d: Revision = %d, %v; want %d", i, rev, err, put.Revision+int64(i))
		}
		err = db.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, store.Resource{Key: "/subscriptions/t"}, "")
			return err
		})
		if err != nil {
			t.Fatalf("reopen %d: Update = %v; want nil", i, err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("reopen %d: Close = %v; want nil", i, err)
		}
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pglink.db")
	db := open(t, path)
	if _, err := db.write.ExecContext(t.Context(), `UPDATE meta SET value = 99 WHERE name = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(t.Context(), path, nil); err == nil {
		db.Close()
		t.Fatalf("Open(schema version 99) = nil; want an error")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open(schema version 99) = %v; want an error saying the schema is newer", err)
	}
}

func TestClose(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "pglink.db"))
	ch := db.Notify(t.Context())
	if err := db.Close(); err != nil {
		t.Fatalf("Close = %v; want nil", err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Errorf("Notify channel after Close received a value; want it closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Notify channel not closed by Close")
	}
	if _, ok := <-db.Notify(t.Context()); ok {
		t.Errorf("Notify after Close received a value; want a closed channel")
	}
	if err := db.Update(t.Context(), func(store.Tx) error { return nil }); err == nil {
		t.Errorf("Update after Close = nil; want an error")
	}
}

func TestTxAfterReturn(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "pglink.db"))
	var kept store.Tx
	if err := db.Update(t.Context(), func(tx store.Tx) error { kept = tx; return nil }); err != nil {
		t.Fatalf("Update = %v; want nil", err)
	}
	if _, err := kept.Put(t.Context(), store.Resource{Key: "/subscriptions/s"}, ""); !errors.Is(err, errTxDone) {
		t.Errorf("Put after Update returned = %v; want %v", err, errTxDone)
	}
}

// TestRollbackOnPanic checks a panicking fn releases the write connection.
func TestRollbackOnPanic(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "pglink.db"))
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

// Crash safety: a child process (this test binary, re-executed) commits transactions and prints
// "ack N" after each Update returns; it is then killed or exits without Close. Every
// acknowledged transaction must be in the database, whole, and nothing else half-applied.

const (
	crashDBEnv   = "PGLINK_SQLITE_CRASH_DB"
	crashModeEnv = "PGLINK_SQLITE_CRASH_MODE" // "run" until killed, or "exit" after crashTxs
	crashTxs     = 40
	crashDone    = 3 // the child's exit code in mode "exit"
)

// crashKey returns the key of resource j (0 or 1) that transaction i writes.
func crashKey(i, j int) string { return fmt.Sprintf("/subscriptions/s/tx%04d/r%d", i, j) }

// TestCrashChild is the child process of TestCrashSafety; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("runs only as the child process of TestCrashSafety, not under CI or go test directly")
	}
	ctx := context.Background()
	db, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; os.Getenv(crashModeEnv) == "run" || i < crashTxs; i++ {
		err := db.Update(ctx, func(tx store.Tx) error {
			// Several writes, so a torn transaction would show.
			for j := range 2 {
				r := store.Resource{Key: crashKey(i, j), Body: bytes.Repeat([]byte("x"), 2000)}
				if _, err := tx.Put(ctx, r, ""); err != nil {
					return err
				}
			}
			_, err := tx.PutOperation(ctx, store.Operation{ID: fmt.Sprintf("op%04d", i), ResourceKey: crashKey(i, 0),
				Status: store.OpSucceeded})
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", i) // os.Stdout is unbuffered: printed means acknowledged
	}
	os.Exit(crashDone) // without Close; 0 would be reported as a test calling os.Exit
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a child process")
	}
	for _, mode := range []string{"run", "exit"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pglink.db")
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashModeEnv+"="+mode)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("start child: %v", err)
			}
			acked := -1
			killed := false
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				n, ok := strings.CutPrefix(sc.Text(), "ack ")
				if !ok {
					continue
				}
				if acked, err = strconv.Atoi(n); err != nil {
					t.Fatalf("child printed %q", sc.Text())
				}
				if mode == "run" && acked >= crashTxs && !killed {
					cmd.Process.Kill() // SIGKILL: no deferred work, no Close
					killed = true
				}
			}
			// Lines printed before the kill were read above: they are acknowledged too.
			err = cmd.Wait()
			if mode == "exit" && cmd.ProcessState.ExitCode() != crashDone {
				t.Fatalf("child: %v; want exit status %d\n%s", err, crashDone, stderr.Bytes())
			}
			if mode == "run" && !killed {
				t.Fatalf("child ended before it was killed: %v\n%s", err, stderr.Bytes())
			}
			if acked < crashTxs-1 {
				t.Fatalf("child acknowledged %d transactions; want at least %d\n%s", acked+1, crashTxs, stderr.Bytes())
			}

			db := open(t, path)
			ctx := t.Context()
			var committed int
			err = db.View(ctx, func(tx store.Tx) error {
				for i := 0; ; i++ {
					_, err0 := tx.Get(ctx, crashKey(i, 0))
					_, err1 := tx.Get(ctx, crashKey(i, 1))
					_, errOp := tx.Operation(ctx, fmt.Sprintf("op%04d", i))
					if errors.Is(err0, store.ErrNotFound) && errors.Is(err1, store.ErrNotFound) && errors.Is(errOp, store.ErrNotFound) {
						if i <= acked {
							t.Errorf("transaction %d was acknowledged but is missing", i)
						}
						committed = i
						return nil
					}
					if err0 != nil || err1 != nil || errOp != nil {
						t.Errorf("transaction %d is torn: %v, %v, %v", i, err0, err1, errOp)
						committed = i
						return nil
					}
				}
			})
			if err != nil {
				t.Fatalf("View = %v; want nil", err)
			}
			// At most one transaction may have committed without being acknowledged.
			if committed < acked+1 || committed > acked+2 {
				t.Errorf("%d transactions committed; want %d or %d", committed, acked+1, acked+2)
			}
			if rev, err := db.Revision(ctx); err != nil || rev != int64(committed) {
				t.Errorf("Revision() = %d, %v; want %d", rev, err, committed)
			}
			if c, err := db.Changes(ctx, 0, 0); err != nil || len(c) != 3*committed {
				t.Errorf("Changes(0) = %d changes, %v; want %d", len(c), err, 3*committed)
			}
			var integrity string
			if err := db.read.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
				t.Errorf("PRAGMA integrity_check = %q, %v; want ok", integrity, err)
			}
		})
	}
}

// TestMigrateEventsFromV1: events written by schema version 1 (no filter columns) are served,
// and filtered, after the migration to version 2.
func TestMigrateEventsFromV1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pglink.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	const id = "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1/privateEndpointConnections/pe1.x"
	body := `{"caller":"Alice@example.com","correlationId":"c-1","resourceGroupName":"RG","resourceId":"` + id +
		`","resourceProviderName":{"value":"Microsoft.DBforPostgreSQL"},"status":{"value":"Succeeded"}}`
	for _, q := range []string{
		`CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
		schemaV1,
		`INSERT INTO meta (name, value) VALUES ('schema_version', 1)`,
		`INSERT INTO events (time, subscription, body) VALUES ('2030-01-01T00:00:00.000000000Z', 's1', CAST('` + body + `' AS BLOB))`,
		`INSERT INTO events (time, subscription, body) VALUES ('2030-01-01T00:00:01.000000000Z', 's1', CAST('not json' AS BLOB))`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("build version 1 database: %v", err)
		}
	}
	raw.Close()

	db := open(t, path)
	for _, q := range []store.EventQuery{
		{Subscription: "s1", ResourceID: id},
		{Subscription: "s1", ResourceID: "/subscriptions/s1/resourceGroups/rg", Subtree: true},
		{Subscription: "s1", ResourceGroup: "rg"},
		{Subscription: "s1", Caller: "alice@example.com"},
		{Subscription: "s1", CorrelationID: "C-1"},
		{Subscription: "s1", Provider: "microsoft.dbforpostgresql", Status: "succeeded"},
	} {
		got, err := db.Events(ctx, q)
		if err != nil || len(got) != 1 || string(got[0].Body) != body {
			t.Errorf("Events(%+v) after migration = %v, %v; want the version 1 event", q, got, err)
		}
	}
	if got, err := db.Events(ctx, store.EventQuery{Subscription: "s1"}); err != nil || len(got) != 2 {
		t.Errorf("Events(s1) after migration = %d events, %v; want 2 (an unreadable body is kept)", len(got), err)
	}
}

// TestEventsUseIndexes: each activity log filter is answered through an index, never a scan
// of the whole table.
func TestEventsUseIndexes(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "pglink.db"))
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		q     store.EventQuery
		index string
	}{
		{store.EventQuery{Subscription: "s1", Since: since, Limit: 101}, "events_newest"},
		{store.EventQuery{Subscription: "s1", Since: since, Before: 500, Limit: 101}, "events_newest"},
		{store.EventQuery{Subscription: "s1", Since: since, ResourceID: "/subscriptions/s1/x", Limit: 101}, "events_resource"},
		{store.EventQuery{Subscription: "s1", Since: since, ResourceID: "/subscriptions/s1/x", Subtree: true, Limit: 101}, "events_resource"},
		{store.EventQuery{Subscription: "s1", Since: since, ResourceGroup: "rg", Limit: 101}, "events_group"},
		{store.EventQuery{Subscription: "s1", Since: since, Caller: "a@example.com", Limit: 101}, "events_caller"},
		{store.EventQuery{Subscription: "s1", Since: since, CorrelationID: "c", Limit: 101}, "events_correlation"},
	} {
		query, args := eventsQuery(tt.q)
		rows, err := db.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, "INDEX "+tt.index) {
			t.Errorf("plan of Events(%+v) = %q; want it to use index %s", tt.q, joined, tt.index)
		}
	}
}

// TestListChildrenOfATypeUsesTheirIndex: listing the children of one type under one parent (a
// group's servers) searches resources_parent_type, rather than walking every resource of the
// type.
func TestListChildrenOfATypeUsesTheirIndex(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "pglink.db"))
	rows, err := db.read.QueryContext(t.Context(), `EXPLAIN QUERY PLAN SELECT `+resourceColumns+
		` FROM resources WHERE parent = ? AND type = ? COLLATE NOCASE AND key > ? ORDER BY key LIMIT ?`,
		"/subscriptions/s/resourcegroups/rg", "Microsoft.DBforPostgreSQL/flexibleServers", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "resources_parent_type") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("query plan = %q; want a search of resources_parent_type in key order", p)
	}
}
