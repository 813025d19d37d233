package arm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

const (
	widgetType = "Microsoft.Test/widgets"
	apiVersion = "2024-01-01"
	rgPath     = "/subscriptions/s1/resourceGroups/rg"
	widgetPath = rgPath + "/providers/" + widgetType + "/w1"
)

// fixture is a front door over a real SQLite store with one subscription and resource group
// and a test resource type whose handler the test sets.
type fixture struct {
	st      store.Store // the store itself
	audited store.Store // what handlers write through
	front   *arm.Server
	handler arm.Handler
}

type fakeAuth struct{}

func (fakeAuth) Authenticate(*http.Request) (identity.Principal, error) {
	return identity.Principal{ObjectID: "oid-1", Name: "alice@example.com", Kind: identity.KindUser, TenantID: "t1"}, nil
}

// pendingWaiter reports every operation as still running.
type pendingWaiter struct{ st store.Store }

func (w pendingWaiter) Wait(ctx context.Context, id string, d time.Duration) (store.Operation, error) {
	var op store.Operation
	err := w.st.View(ctx, func(tx store.Tx) error {
		var err error
		op, err = tx.Operation(ctx, id)
		return err
	})
	return op, err
}

func newFixture(t *testing.T, barrier arm.Barrier) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sub := resource.ID{Subscription: "s1"}
	rg := resource.MustParse(rgPath)
	if err := db.Update(t.Context(), func(tx store.Tx) error {
		if _, err := arm.Save(t.Context(), tx, sub, map[string]string{"id": sub.String()}); err != nil {
			return err
		}
		_, err := arm.Save(t.Context(), tx, rg, map[string]string{"id": rg.String()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: db, audited: arm.Audited(db)}
	cfg := arm.Config{Endpoint: "https://pglink.test", TenantID: "t1", InlineWait: 0, Barrier: barrier}
	if barrier == nil {
		cfg.Barrier = nil
	}
	f.front = arm.New(cfg, db, fakeAuth{}, pendingWaiter{db}, log)
	f.front.Register(arm.Type{Name: widgetType, APIVersions: []string{apiVersion},
		Handler: func(ctx context.Context, req *arm.Request) (*arm.Response, error) { return f.handler(ctx, req) }})
	return f
}

// serve sends one request through the front door with ctx as its context.
func (f *fixture) serve(ctx context.Context, method, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(ctx, method, path+"?api-version="+apiVersion, strings.NewReader(`{}`))
	w := httptest.NewRecorder()
	f.front.ServeHTTP(w, r)
	return w
}

// events returns the activity log of subscription s1, oldest first.
func (f *fixture) events(t *testing.T) []activity.Event {
	t.Helper()
	evs, err := f.st.Events(t.Context(), store.EventQuery{Subscription: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var out []activity.Event
	for i := len(evs) - 1; i >= 0; i-- {
		var e activity.Event
		if err := json.Unmarshal(evs[i].Body, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func putWidget(ctx context.Context, tx store.Tx, id resource.ID) error {
	_, err := arm.Save(ctx, tx, id, map[string]string{"id": id.String(), "at": time.Now().String()})
	return err
}

// TestAuditOneEventPerWrite: every write request gets exactly one event, written in the
// transaction of its change when there is one, with the right status.
func TestAuditOneEventPerWrite(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name       string
		existing   bool // the widget exists before the request
		handler    func(f *fixture) arm.Handler
		wantHTTP   int
		wantStatus string // event status
		wantSub    string // event subStatus
		wantDesc   string
		wantOp     bool
		wantErr    string // error code in the event
	}{
		{"create", false, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				err := f.audited.Update(ctx, func(tx store.Tx) error { return putWidget(ctx, tx, req.Target.ID) })
				return &arm.Response{Status: http.StatusCreated}, err
			}
		}, 201, "Succeeded", "Created", "", false, ""},
		{"update", true, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				err := f.audited.Update(ctx, func(tx store.Tx) error { return putWidget(ctx, tx, req.Target.ID) })
				return &arm.Response{}, err
			}
		}, 200, "Succeeded", "OK", "", false, ""},
		{"two transactions", false, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				for range 2 {
					if err := f.audited.Update(ctx, func(tx store.Tx) error { return putWidget(ctx, tx, req.Target.ID) }); err != nil {
						return nil, err
					}
				}
				return &arm.Response{Status: http.StatusCreated}, nil
			}
		}, 201, "Succeeded", "Created", "", false, ""},
		{"description", true, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				req.Describe("ticket 42")
				err := f.audited.Update(ctx, func(tx store.Tx) error { return putWidget(ctx, tx, req.Target.ID) })
				return &arm.Response{}, err
			}
		}, 200, "Succeeded", "OK", "ticket 42", false, ""},
		{"operation", true, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				op := store.Operation{ID: "op-1", ResourceKey: req.Target.ID.Key(), ResourceID: req.Target.ID.String(),
					Kind: "test", Status: store.OpInProgress, Method: req.Method, Created: time.Now(), Updated: time.Now()}
				err := f.audited.Update(ctx, func(tx store.Tx) error {
					var err error
					op, err = tx.PutOperation(ctx, op)
					return err
				})
				return &arm.Response{Op: &op}, err
			}
		}, 202, "Started", "Accepted", "", true, ""},
		{"nothing to change", true, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				err := f.audited.Update(ctx, func(tx store.Tx) error { _, err := tx.Get(ctx, req.Target.ID.Key()); return err })
				return &arm.Response{}, err
			}
		}, 200, "Succeeded", "OK", "", false, ""},
		{"refused", true, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				return nil, resource.Errorf(resource.Conflict, "ServerIsNotReady", "not ready")
			}
		}, 409, "Failed", "Conflict", "", false, "ServerIsNotReady"},
		{"rolled back", true, func(f *fixture) arm.Handler {
			return func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				req.Describe("why")
				err := f.audited.Update(ctx, func(tx store.Tx) error {
					if err := putWidget(ctx, tx, req.Target.ID); err != nil {
						return err
					}
					return errBoom
				})
				return nil, err
			}
		}, 500, "Failed", "InternalServerError", "why", false, "InternalServerError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			id := resource.MustParse(widgetPath)
			if tt.existing {
				if err := f.st.Update(t.Context(), func(tx store.Tx) error { return putWidget(t.Context(), tx, id) }); err != nil {
					t.Fatal(err)
				}
			}
			f.handler = tt.handler(f)
			w := f.serve(t.Context(), http.MethodPut, widgetPath)
			if w.Code != tt.wantHTTP {
				t.Errorf("PUT = %d %s; want %d", w.Code, w.Body, tt.wantHTTP)
			}
			evs := f.events(t)
			if len(evs) != 1 {
				t.Fatalf("activity log has %d events; want 1: %+v", len(evs), evs)
			}
			e := evs[0]
			if e.Status.Value != tt.wantStatus || e.SubStatus.Value != tt.wantSub || e.Description != tt.wantDesc {
				t.Errorf("event status, subStatus, description = %q, %q, %q; want %q, %q, %q",
					e.Status.Value, e.SubStatus.Value, e.Description, tt.wantStatus, tt.wantSub, tt.wantDesc)
			}
			if (e.OperationID != "") != tt.wantOp {
				t.Errorf("event operationId = %q; want one: %v", e.OperationID, tt.wantOp)
			}
			if e.Caller != "alice@example.com" || e.OperationName.Value != widgetType+"/write" || !strings.EqualFold(e.ResourceID, widgetPath) || e.CorrelationID == "" {
				t.Errorf("event caller, operation, resource, correlation = %q, %q, %q, %q; want the request's",
					e.Caller, e.OperationName.Value, e.ResourceID, e.CorrelationID)
			}
			if got := e.Properties["statusMessage"]; !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Errorf("event statusMessage = %q; want the error %q", got, tt.wantErr)
			}
		})
	}
}

// TestAuditClientGone: a client that goes away right after its write was made (its request
// context is canceled) still leaves exactly one event, whether the handler's transaction
// committed or not.
func TestAuditClientGone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool // cancel before the handler's transaction (it fails) or after (it commits)
		want   string
	}{
		{"after the change", false, "Succeeded"},
		{"before the change", true, "Failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			f.handler = func(hctx context.Context, req *arm.Request) (*arm.Response, error) {
				if tc.before {
					cancel()
				}
				err := f.audited.Update(hctx, func(tx store.Tx) error { return putWidget(hctx, tx, req.Target.ID) })
				cancel() // the client resets its connection
				return &arm.Response{Status: http.StatusCreated}, err
			}
			f.serve(ctx, http.MethodPut, widgetPath)
			evs := f.events(t)
			if len(evs) != 1 || evs[0].Status.Value != tc.want {
				t.Fatalf("activity log = %+v; want exactly one %s event", evs, tc.want)
			}
		})
	}
}

// stuckBarrier is a data plane that never applies anything.
type stuckBarrier struct{}

func (stuckBarrier) WaitApplied(ctx context.Context, rev int64) error {
	<-ctx.Done()
	return fmt.Errorf("wait for revision %d: %w", rev, ctx.Err())
}

// readyBarrier is a data plane that has applied everything.
type readyBarrier struct{}

func (readyBarrier) WaitApplied(context.Context, int64) error { return nil }

// TestBarrierNotApplied: a synchronous write is not acknowledged unless the data plane
// applied it; it is answered 500 DataPlaneNotApplied, which says the change is saved.
func TestBarrierNotApplied(t *testing.T) {
	for _, tc := range []struct {
		name     string
		barrier  arm.Barrier
		wantCode int
		wantErr  string
	}{
		{"applied", readyBarrier{}, http.StatusCreated, ""},
		{"not applied", stuckBarrier{}, http.StatusInternalServerError, "DataPlaneNotApplied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.barrier)
			f.handler = func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				err := f.audited.Update(ctx, func(tx store.Tx) error { return putWidget(ctx, tx, req.Target.ID) })
				return &arm.Response{Status: http.StatusCreated, Body: map[string]string{"id": req.Target.ID.String()}}, err
			}
			w := f.serve(t.Context(), http.MethodPut, widgetPath)
			var body arm.ErrorBody
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tc.wantCode || body.Error.Code != tc.wantErr {
				t.Fatalf("PUT = %d %s; want %d %s", w.Code, w.Body, tc.wantCode, tc.wantErr)
			}
			if tc.wantErr != "" && !strings.Contains(body.Error.Message, "saved") {
				t.Errorf("error message %q; want it to say the change is saved", body.Error.Message)
			}
		})
	}
}
