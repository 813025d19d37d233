package operation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ops.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// run starts workers until the test ends.
func run(t *testing.T, w *operation.Workers) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

var target = resource.MustParse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db")

func startOp(t *testing.T, st store.Store, kind, goal string, id resource.ID) store.Operation {
	t.Helper()
	op, err := operation.New(kind, id, "eastus", "PUT", goal, operation.Meta{Action: "x/write", Caller: "tester"}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(context.Background(), func(tx store.Tx) error {
		op, err = operation.Start(context.Background(), tx, op)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func log(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func TestOperationOutcomes(t *testing.T) {
	st := openStore(t)
	w := operation.NewWorkers(st, log(t), operation.Options{})
	var transient atomic.Int32
	w.Register("ok", func(ctx context.Context, op operation.Op) (operation.Commit, error) {
		var in map[string]string
		if err := json.Unmarshal(op.Data, &in); err != nil || in["k"] != "v" {
			return nil, fmt.Errorf("input = %s", op.Data)
		}
		return func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Put(ctx, store.Resource{Key: op.ResourceKey, ID: op.ResourceID, Type: "t", Body: []byte(`{"done":true}`)}, "")
			return err
		}, nil
	})
	w.Register("refused", func(ctx context.Context, op operation.Op) (operation.Commit, error) {
		return nil, resource.Errorf(resource.Conflict, "Nope", "not now")
	})
	w.Register("flaky", func(ctx context.Context, op operation.Op) (operation.Commit, error) {
		if transient.Add(1) == 1 {
			return nil, errors.New("disk hiccup")
		}
		return nil, nil
	})
	run(t, w)
	ctx := context.Background()
	for _, tc := range []struct {
		kind, status, code string
	}{{"ok", store.OpSucceeded, ""}, {"refused", store.OpFailed, "Nope"}, {"flaky", store.OpSucceeded, ""}} {
		id := target.Child("firewallRules", tc.kind)
		op := startOp(t, st, tc.kind, "g", id)
		got, err := w.Wait(ctx, op.ID, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tc.status {
			t.Errorf("%s: status = %s; want %s", tc.kind, got.Status, tc.status)
		}
		if tc.code != "" {
			var e resource.Error
			if err := json.Unmarshal(got.Error, &e); err != nil || e.Code != tc.code || e.Kind != resource.Conflict {
				t.Errorf("%s: error = %s; want code %s", tc.kind, got.Error, tc.code)
			}
		}
	}
	if n := transient.Load(); n != 2 {
		t.Errorf("flaky ran %d times; want 2 (one retry)", n)
	}
	err := st.View(ctx, func(tx store.Tx) error {
		r, err := tx.Get(ctx, target.Child("firewallRules", "ok").Key())
		if err != nil || string(r.Body) != `{"done":true}` {
			return fmt.Errorf("commit not applied: %v %s", err, r.Body)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	evs, err := st.Events(ctx, store.EventQuery{Subscription: "s"})
	if err != nil || len(evs) != 3 {
		t.Errorf("activity events = %d, %v; want one per finished operation", len(evs), err)
	}
}

func TestStartJoinsOrConflicts(t *testing.T) {
	st := openStore(t)
	first := startOp(t, st, "k", "goal-1", target)
	again := startOp(t, st, "k", "goal-1", target)
	if again.ID != first.ID {
		t.Errorf("identical retry started %s; want to join %s", again.ID, first.ID)
	}
	op, _ := operation.New("k", target, "eastus", "PUT", "goal-2", operation.Meta{}, nil)
	err := st.Update(context.Background(), func(tx store.Tx) error {
		_, err := operation.Start(context.Background(), tx, op)
		return err
	})
	if e, ok := resource.AsError(err); !ok || e.Code != "AnotherOperationInProgress" || e.Kind != resource.Conflict {
		t.Errorf("different request during an operation: %v; want 409 AnotherOperationInProgress", err)
	}
}

// TestExactlyOnce runs many operations through two worker pools on one store: every
// operation's function runs once and every operation succeeds.
func TestExactlyOnce(t *testing.T) {
	st := openStore(t)
	var mu sync.Mutex
	runs := map[string]int{}
	f := func(ctx context.Context, op operation.Op) (operation.Commit, error) {
		mu.Lock()
		runs[op.ID]++
		mu.Unlock()
		return nil, nil
	}
	for _, name := range []string{"a", "b"} {
		w := operation.NewWorkers(st, log(t), operation.Options{Owner: name})
		w.Register("k", f)
		run(t, w)
	}
	w := operation.NewWorkers(st, log(t), operation.Options{Owner: "waiter"})
	var ids []string
	for i := 0; i < 40; i++ {
		ids = append(ids, startOp(t, st, "k", "g", target.Child("firewallRules", fmt.Sprint(i))).ID)
	}
	for _, id := range ids {
		op, err := w.Wait(context.Background(), id, 10*time.Second)
		if err != nil || op.Status != store.OpSucceeded {
			t.Fatalf("operation %s: %v %v", id, op.Status, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if runs[id] != 1 {
			t.Errorf("operation %s ran %d times; want 1", id, runs[id])
		}
	}
}

// TestFailureCommits: whatever makes an operation fail — an error for the user, an internal
// error retried until the attempts run out, a commit that fails — its kind's Failure commit
// runs in the transaction that records it Failed. A Failure that itself fails is tried again
// later; the operation is never recorded Failed without it.
func TestFailureCommits(t *testing.T) {
	st := openStore(t)
	w := operation.NewWorkers(st, log(t), operation.Options{RetryDelay: 5 * time.Millisecond})
	var mu sync.Mutex
	runs := map[string]int{}     // kind -> Func runs
	failures := map[string]int{} // kind -> Failure runs
	causes := map[string]string{}
	count := func(m map[string]int, k string) int {
		mu.Lock()
		defer mu.Unlock()
		m[k]++
		return m[k]
	}
	put := func(op operation.Op, body string) operation.Commit {
		return func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Put(ctx, store.Resource{Key: op.ResourceKey, ID: op.ResourceID, Type: "t", Body: []byte(body)}, "")
			return err
		}
	}
	broken := func(ctx context.Context, tx store.Tx) error { return errors.New("constraint violated") }
	funcs := map[string]operation.Func{
		"user": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return nil, resource.Errorf(resource.Invalid, "EngineRefused", "no")
		},
		"internal": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return nil, errors.New("engine crashed")
		},
		"commit": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return broken, nil
		},
		"rollback": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return put(op, `{"state":"rolled back"}`), resource.Errorf(resource.Conflict, "Nope", "no")
		},
		"brokenrollback": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return broken, resource.Errorf(resource.Conflict, "Nope", "no")
		},
		"flakycleanup": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return nil, resource.Errorf(resource.Invalid, "EngineRefused", "no")
		},
		"flakycommit": func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			return nil, resource.Errorf(resource.Invalid, "EngineRefused", "no")
		},
	}
	for kind, f := range funcs {
		w.Register(kind, func(ctx context.Context, op operation.Op) (operation.Commit, error) {
			count(runs, kind)
			return f(ctx, op)
		})
		w.RegisterFailure(kind, func(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
			n := count(failures, kind)
			mu.Lock()
			causes[kind] = cause.Error()
			mu.Unlock()
			switch {
			case kind == "flakycleanup" && n == 1:
				return nil, errors.New("engine busy")
			case kind == "flakycommit" && n == 1:
				return broken, nil
			}
			return put(op, `{"state":"sane"}`), nil
		})
	}
	run(t, w)
	ctx := context.Background()
	for _, tc := range []struct {
		kind, code, body string
		runs, failures   int
	}{
		{"user", "EngineRefused", `{"state":"sane"}`, 1, 1},
		{"internal", "InternalServerError", `{"state":"sane"}`, 5, 1},
		{"commit", "InternalServerError", `{"state":"sane"}`, 1, 1},
		{"rollback", "Nope", `{"state":"rolled back"}`, 1, 0},
		{"brokenrollback", "Nope", `{"state":"sane"}`, 1, 1},
		{"flakycleanup", "EngineRefused", `{"state":"sane"}`, 1, 2},
		{"flakycommit", "EngineRefused", `{"state":"sane"}`, 1, 2},
	} {
		id := target.Child("firewallRules", tc.kind)
		op := startOp(t, st, tc.kind, "g", id)
		var got store.Operation
		for i := 0; i < 100; i++ { // a postponed failure finishes after a retry delay
			var err error
			if got, err = w.Wait(ctx, op.ID, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if got.Done() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got.Status != store.OpFailed {
			t.Errorf("%s: status = %s; want Failed", tc.kind, got.Status)
			continue
		}
		if e := operation.DecodeError(got.Error); e.Code != tc.code {
			t.Errorf("%s: error = %s; want code %s", tc.kind, got.Error, tc.code)
		}
		var body string
		st.View(ctx, func(tx store.Tx) error {
			r, err := tx.Get(ctx, id.Key())
			body = string(r.Body)
			return err
		})
		if body != tc.body {
			t.Errorf("%s: resource after failure = %q; want %q", tc.kind, body, tc.body)
		}
		mu.Lock()
		if runs[tc.kind] != tc.runs || failures[tc.kind] != tc.failures {
			t.Errorf("%s: Func ran %d times, Failure %d; want %d and %d (cause %q)", tc.kind, runs[tc.kind], failures[tc.kind], tc.runs, tc.failures, causes[tc.kind])
		}
		mu.Unlock()
	}
}

// TestBusyDoesNotCountAsAttempt: a Func that must wait for other operations (ErrBusy) is run
// again until it can proceed, beyond the attempts an error would get.
func TestBusyDoesNotCountAsAttempt(t *testing.T) {
	st := openStore(t)
	w := operation.NewWorkers(st, log(t), operation.Options{RetryDelay: 4 * time.Millisecond})
	var n atomic.Int32
	w.Register("waits", func(ctx context.Context, op operation.Op) (operation.Commit, error) {
		if n.Add(1) <= 10 {
			return nil, fmt.Errorf("another operation runs: %w", operation.ErrBusy)
		}
		return nil, nil
	})
	run(t, w)
	op := startOp(t, st, "waits", "g", target)
	got, err := w.Wait(context.Background(), op.ID, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.OpSucceeded || n.Load() != 11 {
		t.Errorf("status = %s after %d runs; want Succeeded after 11", got.Status, n.Load())
	}
}

// TestExpiredLeaseCommitsNothing: a worker whose lease ran out while it worked (it may have
// been taken for dead) commits nothing; the operation is run again and committed once.
func TestExpiredLeaseCommitsNothing(t *testing.T) {
	st := openStore(t)
	key := "/marker"
	var runs atomic.Int32
	started, proceed := make(chan struct{}), make(chan struct{})
	f := func(ctx context.Context, op operation.Op) (operation.Commit, error) {
		n := runs.Add(1)
		if n == 1 {
			close(started)
			<-proceed
		}
		return func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Put(ctx, store.Resource{Key: key, ID: key, Type: "t", Body: []byte(fmt.Sprint(n))}, "")
			return err
		}, nil
	}
	w := operation.NewWorkers(st, log(t), operation.Options{Owner: "w", Lease: time.Hour, Parallel: 1})
	w.Register("k", f)
	run(t, w)
	op := startOp(t, st, "k", "g", target)
	<-started
	// The lease runs out before the run returns (its renewals were lost, say).
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		cur, err := tx.Operation(context.Background(), op.ID)
		if err != nil {
			return err
		}
		cur.LeaseUntil = time.Now().Add(-time.Second)
		_, err = tx.PutOperation(context.Background(), cur)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	done, err := w.Wait(context.Background(), op.ID, 10*time.Second)
	if err != nil || done.Status != store.OpSucceeded {
		t.Fatalf("operation = %v, %v; want Succeeded", done.Status, err)
	}
	var body string
	if err := st.View(context.Background(), func(tx store.Tx) error {
		r, err := tx.Get(context.Background(), key)
		body = string(r.Body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if body != "2" || runs.Load() != 2 {
		t.Errorf("committed by run %s of %d; want run 2 of 2 (the first run's lease had expired)", body, runs.Load())
	}
}
