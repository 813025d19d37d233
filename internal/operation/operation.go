// Package operation runs long-running operations. An operation is a row in the store, written
// in the same transaction as the change that started it. Workers lease operations, run their
// side effects (which must be idempotent: a crash may run them again), and finish them in one
// transaction that checks the lease is still theirs, so an operation's outcome is recorded
// exactly once even if several workers or processes race.
package operation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Meta is who started an operation and why, for the activity log.
type Meta struct {
	TenantID       string `json:"tenantId,omitempty"`
	Caller         string `json:"caller,omitempty"`
	CallerObjectID string `json:"callerObjectId,omitempty"`
	Action         string `json:"action,omitempty"` // RBAC action
	CorrelationID  string `json:"correlationId,omitempty"`
	Description    string `json:"description,omitempty"`
}

type envelope struct {
	Meta Meta            `json:"meta"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Op is a leased operation as a Func sees it.
type Op struct {
	store.Operation
	Meta Meta
	Data json.RawMessage // what the starter passed to New
}

// Commit records an operation's outcome inside the finishing transaction.
type Commit func(ctx context.Context, tx store.Tx) error

// Func runs the side effects of one kind of operation and returns the commit that records the
// outcome. It returns a *resource.Error (with an optional commit that rolls state back) when
// the operation failed for a reason the user should see; any other error is retried.
type Func func(ctx context.Context, op Op) (Commit, error)

// ErrBusy is returned (wrapped) by a Func whose operation must wait for other operations to
// finish first. The workers release it, free its slot for others, and run it again shortly;
// it does not count as a failed attempt.
var ErrBusy = errors.New("operation waits for other operations")

// Failure returns the commit that leaves the resource of op in a sane state (its previous
// state, or gone) after op failed for good with cause: a *resource.Error from its Func (whose
// own rollback commit, if it returned one, failed or was missing), an error retried until the
// attempts ran out, or a commit that failed. The commit runs in the transaction that records
// the operation Failed. Before returning, a Failure may undo side effects outside the store;
// they must be idempotent, since a Failure may run again. If a Failure or its commit returns
// an error, the workers log it and try again later: the operation stays InProgress until its
// failure is recorded, and is never recorded Failed with its resource left mid-transition.
type Failure func(ctx context.Context, op Op, cause error) (Commit, error)

// New builds an InProgress operation of kind on the resource id, started by an HTTP method.
// goal identifies the request: an identical retry joins the operation (see Start).
func New(kind string, id resource.ID, location, method, goal string, meta Meta, data any) (store.Operation, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return store.Operation{}, fmt.Errorf("encode %s input: %w", kind, err)
	}
	env, err := json.Marshal(envelope{Meta: meta, Data: raw})
	if err != nil {
		return store.Operation{}, fmt.Errorf("encode %s input: %w", kind, err)
	}
	now := time.Now().UTC()
	return store.Operation{
		ID:          resource.NewGUID(),
		ResourceKey: id.Key(),
		ResourceID:  id.String(),
		Kind:        kind,
		Goal:        goal,
		Status:      store.OpInProgress,
		Input:       env,
		Method:      method,
		Location:    location,
		Created:     now,
		Updated:     now,
	}, nil
}

// Digest returns a short stable digest of parts, for operation goals.
func Digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Start stores op inside tx unless its resource already has an operation in flight: an
// operation with the same goal is returned instead (an identical retry joins it); a different
// one is a 409 AnotherOperationInProgress.
func Start(ctx context.Context, tx store.Tx, op store.Operation) (store.Operation, error) {
	cur, err := tx.ActiveOperation(ctx, op.ResourceKey)
	switch {
	case err == nil && cur.Goal == op.Goal:
		return cur, nil
	case err == nil:
		return op, resource.Errorf(resource.Conflict, "AnotherOperationInProgress",
			"Another operation is in progress on the resource '%s'. Wait for it to finish and try again.", op.ResourceID)
	case !errors.Is(err, store.ErrNotFound):
		return op, fmt.Errorf("find active operation on %s: %w", op.ResourceKey, err)
	}
	op, err = tx.PutOperation(ctx, op)
	if err != nil {
		return op, fmt.Errorf("store operation %s: %w", op.ID, err)
	}
	return op, nil
}

// Workers lease and run operations. It is safe for concurrent use.
type Workers struct {
	st       store.Store
	log      *slog.Logger
	owner    string
	node     string
	lease    time.Duration
	parallel int
	now      func() time.Time
	funcs    map[string]Func
	failures map[string]Failure
	retry    time.Duration

	mu      sync.Mutex
	waiters map[string][]chan struct{} // guarded by mu: operation id -> waiting requests
	leased  atomic.Int64               // operations these workers hold now
}

// Leased returns how many operations these workers hold (run) now.
func (w *Workers) Leased() int { return int(w.leased.Load()) }

// Options tune the workers. Zero values pick defaults.
type Options struct {
	Owner    string        // lease owner name; default a random id
	Node     string        // the data-plane node these workers run on: they also lease its operations
	Lease    time.Duration // default 10s; renewed while an operation runs
	Parallel int           // operations run at once; default 4
	// RetryDelay is how long a failed attempt waits before the next, times the number of
	// attempts so far; default 1s.
	RetryDelay time.Duration
}

// NewWorkers returns workers over st. Register every kind before Run.
func NewWorkers(st store.Store, log *slog.Logger, o Options) *Workers {
	if o.Owner == "" {
		var b [6]byte
		rand.Read(b[:])
		o.Owner = "worker-" + hex.EncodeToString(b[:])
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	return &Workers{st: st, log: log.With("component", "operation"), owner: o.Owner, node: o.Node, lease: o.Lease,
		parallel: o.Parallel, now: time.Now, funcs: map[string]Func{}, failures: map[string]Failure{},
		retry: o.RetryDelay, waiters: map[string][]chan struct{}{}}
}

// Register sets the Func for kind.
func (w *Workers) Register(kind string, f Func) { w.funcs[kind] = f }

// RegisterFailure sets the Failure for kind: what an operation of kind that fails leaves
// behind. A kind without one is recorded Failed with nothing applied.
func (w *Workers) RegisterFailure(kind string, f Failure) { w.failures[kind] = f }

// Run leases and runs operations until ctx is done, then waits for running ones to stop.
func (w *Workers) Run(ctx context.Context) error {
	notify := w.st.Notify(ctx)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	sem := make(chan struct{}, w.parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		for {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			op, err := w.st.LeaseOperation(ctx, w.owner, w.node, w.now(), w.lease)
			if err != nil {
				<-sem
				if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
					w.log.Error("lease operation", "err", err)
				}
				break
			}
			wg.Add(1)
			w.leased.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				defer w.leased.Add(-1)
				w.run(ctx, op)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		case <-tick.C:
		}
	}
}

const maxAttempts = 5

// run runs one leased operation to its end or to a retry.
func (w *Workers) run(ctx context.Context, op store.Operation) {
	log := w.log.With("op", op.ID, "kind", op.Kind, "resource", op.ResourceID)
	var env envelope
	if err := json.Unmarshal(op.Input, &env); err != nil {
		w.finish(ctx, Op{Operation: op}, nil, fmt.Errorf("decode operation input: %w", err), log)
		return
	}
	o := Op{Operation: op, Meta: env.Meta, Data: env.Data}
	if len(op.Error) > 0 {
		// An earlier attempt failed for good but could not record it: finish that failure.
		w.fail(ctx, o, nil, DecodeError(op.Error), log)
		return
	}
	f := w.funcs[op.Kind]
	if f == nil {
		w.finish(ctx, o, nil, fmt.Errorf("no worker for operation kind %q", op.Kind), log)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	go w.renew(runCtx, op.ID)
	commit, err := f(runCtx, o)
	stop()
	switch {
	case err != nil && ctx.Err() != nil:
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		log.Info("operation interrupted by shutdown; releasing it", "err", err)
		w.release(fctx, op.ID, 0)
		return
	case errors.Is(err, ErrBusy):
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		log.Debug("operation waits", "err", err)
		w.later(fctx, op.ID, w.retry/4)
		return
	case err != nil && resource.KindOf(err) == resource.Internal && op.Attempts < maxAttempts:
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		log.Warn("operation failed, will retry", "attempt", op.Attempts, "err", err)
		w.release(fctx, op.ID, time.Duration(op.Attempts)*w.retry)
		return
	}
	w.finish(ctx, o, commit, err, log)
}

// DecodeError turns an operation's stored error back into a *resource.Error.
func DecodeError(raw []byte) *resource.Error {
	var e resource.Error
	if err := json.Unmarshal(raw, &e); err != nil || e.Code == "" {
		return resource.Errorf(resource.Internal, "InternalServerError", "The operation failed.")
	}
	return &e
}

// renew extends the lease of a running operation until ctx is done.
func (w *Workers) renew(ctx context.Context, id string) {
	t := time.NewTicker(w.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.release(ctx, id, w.lease)
		}
	}
}

// release sets the lease of an operation this worker holds to end after d.
func (w *Workers) release(ctx context.Context, id string, d time.Duration) {
	w.setLease(ctx, id, d, false)
}

// later frees the lease of an operation this worker holds until d from now, without counting
// the attempt.
func (w *Workers) later(ctx context.Context, id string, d time.Duration) {
	w.setLease(ctx, id, d, true)
}

// setLease sets the lease of an operation this worker holds to end d from now; uncount takes
// back the attempt its lease counted.
func (w *Workers) setLease(ctx context.Context, id string, d time.Duration, uncount bool) {
	err := w.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.Operation(ctx, id)
		if err != nil {
			return err
		}
		if cur.LeaseOwner != w.owner || cur.Done() {
			return nil
		}
		cur.LeaseUntil = w.now().Add(d)
		if uncount {
			cur.Attempts = max(cur.Attempts-1, 0)
		}
		_, err = tx.PutOperation(ctx, cur)
		return err
	})
	if err != nil && ctx.Err() == nil {
		w.log.Error("set operation lease", "op", id, "err", err)
	}
}

var errLeaseLost = errors.New("lease lost")

// finish records the outcome of o: commit and status in one transaction, if the lease is
// still ours. A failure (runErr, or a commit that fails) goes to fail.
func (w *Workers) finish(ctx context.Context, o Op, commit Commit, runErr error, log *slog.Logger) {
	if runErr != nil {
		w.fail(ctx, o, commit, runErr, log)
		return
	}
	// Record the outcome even if the workers are shutting down: a commit that is ready must
	// not wait for a lease to expire.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := w.write(fctx, o.Operation, o.Meta, commit, nil)
	switch {
	case errors.Is(err, errLeaseLost):
		log.Warn("operation lease lost; another worker owns it")
		return
	case err != nil && ctx.Err() != nil:
		log.Info("operation commit interrupted by shutdown; it will run again", "err", err)
		return
	case err != nil:
		log.Error("commit operation", "err", err)
		w.fail(ctx, o, nil, fmt.Errorf("commit: %w", err), log)
		return
	}
	log.Debug("operation succeeded")
	w.wake(o.ID)
}

// fail records o as Failed with cause, in the transaction that applies rollback (what the
// operation's Func returned with its error) or, if there is none or it fails, the kind's
// Failure commit. If that cannot be recorded, the failure is kept on the operation, which
// stays InProgress, and tried again after a delay.
func (w *Workers) fail(ctx context.Context, o Op, rollback Commit, cause error, log *slog.Logger) {
	// Record the failure even if the workers are shutting down, each write within its own
	// time limit.
	bounded := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	}
	if rollback != nil {
		fctx, cancel := bounded()
		err := w.write(fctx, o.Operation, o.Meta, rollback, cause)
		cancel()
		switch {
		case err == nil:
			w.failed(o.ID, cause, log)
			return
		case errors.Is(err, errLeaseLost):
			log.Warn("operation lease lost; another worker owns it")
			return
		}
		log.Error("roll back failed operation", "err", err, "cause", cause)
	}
	var commit Commit
	var err error
	if f := w.failures[o.Kind]; f != nil {
		// Undoing side effects may take a while: keep the lease meanwhile.
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		go w.renew(rctx, o.ID)
		commit, err = f(rctx, o, cause)
		stop()
		if err != nil {
			err = fmt.Errorf("clean up after failure: %w", err)
		}
	}
	fctx, cancel := bounded()
	defer cancel()
	if err == nil {
		err = w.write(fctx, o.Operation, o.Meta, commit, cause)
	}
	switch {
	case err == nil:
		w.failed(o.ID, cause, log)
		return
	case errors.Is(err, errLeaseLost):
		log.Warn("operation lease lost; another worker owns it")
		return
	}
	delay := min(time.Duration(o.Attempts)*w.retry, 30*w.retry)
	log.Error("record operation failure; will try again", "err", err, "cause", cause, "in", delay)
	w.postpone(fctx, o.Operation, publicError(o.ID, cause), delay)
}

// failed logs a recorded failure and wakes those waiting for it.
func (w *Workers) failed(id string, cause error, log *slog.Logger) {
	if resource.KindOf(cause) == resource.Internal {
		log.Error("operation failed", "err", cause)
	} else {
		log.Info("operation failed", "err", cause)
	}
	w.wake(id)
}

// publicError is what the user sees of err: the *resource.Error in it, or an internal error
// that names the operation.
func publicError(id string, err error) *resource.Error {
	e, ok := resource.AsError(err)
	if !ok {
		e = resource.Errorf(resource.Internal, "InternalServerError",
			"An unexpected error occurred while processing the operation. Tracking ID: '%s'", id)
	}
	return e
}

// postpone keeps the failure e on an InProgress operation this worker holds and frees its
// lease after d, so that a worker finishes the failure later.
func (w *Workers) postpone(ctx context.Context, op store.Operation, e *resource.Error, d time.Duration) {
	err := w.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.Operation(ctx, op.ID)
		if err != nil {
			return err
		}
		if cur.LeaseOwner != w.owner || cur.Done() {
			return nil
		}
		cur.Error, _ = json.Marshal(e)
		cur.LeaseUntil = w.now().Add(d)
		_, err = tx.PutOperation(ctx, cur)
		return err
	})
	if err != nil && ctx.Err() == nil {
		w.log.Error("keep operation failure", "op", op.ID, "err", err)
	}
}

// write records the outcome of op: commit and status in one transaction, if the lease is
// still ours (errLeaseLost otherwise). A non-nil runErr records it Failed.
func (w *Workers) write(ctx context.Context, op store.Operation, meta Meta, commit Commit, runErr error) error {
	return w.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.Operation(ctx, op.ID)
		if err != nil {
			return err
		}
		// Fencing: a worker whose lease expired may have been taken for dead, and another
		// may be running the operation (or be about to): it commits nothing.
		if cur.LeaseOwner != w.owner || cur.Done() || !w.now().Before(cur.LeaseUntil) {
			return errLeaseLost
		}
		if commit != nil {
			if err := commit(ctx, tx); err != nil {
				return err
			}
		}
		cur.Status = store.OpSucceeded
		cur.Error = nil
		cur.LeaseOwner = ""
		cur.Updated = w.now().UTC()
		entry := activity.Entry{Time: cur.Updated, TenantID: meta.TenantID, Caller: meta.Caller,
			CallerObjectID: meta.CallerObjectID, Operation: meta.Action, Scope: op.ResourceID,
			Status: "Succeeded", StatusCode: "OK", CorrelationID: meta.CorrelationID,
			OperationID: op.ID, Description: meta.Description}
		if runErr != nil {
			e := publicError(op.ID, runErr)
			cur.Status = store.OpFailed
			cur.Error, _ = json.Marshal(e)
			entry.Status, entry.StatusCode = "Failed", strings.ReplaceAll(http.StatusText(statusText(e.Kind)), " ", "")
			entry.ErrorCode, entry.ErrorMessage = e.Code, e.Message
		}
		if _, err := tx.PutOperation(ctx, cur); err != nil {
			return err
		}
		ev, err := activity.Build(entry)
		if err != nil {
			return err
		}
		return tx.AppendEvent(ctx, ev)
	})
}

func statusText(k resource.Kind) int {
	switch k {
	case resource.Invalid:
		return http.StatusBadRequest
	case resource.NotFound:
		return http.StatusNotFound
	case resource.Conflict:
		return http.StatusConflict
	case resource.Forbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func (w *Workers) wake(id string) {
	w.mu.Lock()
	chs := w.waiters[id]
	delete(w.waiters, id)
	w.mu.Unlock()
	for _, ch := range chs {
		close(ch)
	}
}

// Wait returns the operation once it is done or d has passed, whichever comes first. It
// notices operations finished by other processes through the store's change notifications.
func (w *Workers) Wait(ctx context.Context, id string, d time.Duration) (store.Operation, error) {
	ch := make(chan struct{})
	w.mu.Lock()
	w.waiters[id] = append(w.waiters[id], ch)
	w.mu.Unlock()
	defer w.forget(id, ch)
	op, err := w.get(ctx, id)
	if err != nil || op.Done() || d <= 0 {
		return op, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notify := w.st.Notify(nctx) // another process may finish it
	for {
		select {
		case <-ch:
			return w.get(ctx, id)
		case <-t.C:
			return w.get(ctx, id)
		case <-ctx.Done():
			return op, ctx.Err()
		case <-notify:
			if op, err = w.get(ctx, id); err != nil || op.Done() {
				return op, err
			}
		}
	}
}

func (w *Workers) forget(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.waiters[id]
	for i, c := range list {
		if c == ch {
			w.waiters[id] = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(w.waiters[id]) == 0 {
		delete(w.waiters, id)
	}
}

func (w *Workers) get(ctx context.Context, id string) (store.Operation, error) {
	var op store.Operation
	err := w.st.View(ctx, func(tx store.Tx) error {
		var err error
		op, err = tx.Operation(ctx, id)
		return err
	})
	if err != nil {
		return op, fmt.Errorf("read operation %s: %w", id, err)
	}
	return op, nil
}

// Begin is New followed by Start: it starts (or joins) an operation of kind on id inside tx.
func Begin(ctx context.Context, tx store.Tx, kind string, id resource.ID, location, method, goal string, meta Meta, data any) (store.Operation, error) {
	return BeginOn(ctx, tx, "", kind, id, location, method, goal, meta, data)
}

// BeginOn is Begin for an operation that only the workers of the data-plane node node may run
// ("" for any): one with side effects on that node's PostgreSQL clusters. A node the store does
// not know (removed with Tx.DeleteNode) counts as "".
func BeginOn(ctx context.Context, tx store.Tx, node, kind string, id resource.ID, location, method, goal string, meta Meta, data any) (store.Operation, error) {
	op, err := New(kind, id, location, method, goal, meta, data)
	if err != nil {
		return op, err
	}
	if node != "" {
		nodes, err := tx.Nodes(ctx)
		if err != nil {
			return op, fmt.Errorf("read nodes: %w", err)
		}
		if !slices.ContainsFunc(nodes, func(n store.Node) bool { return n.Name == node }) {
			node = "" // removed (Tx.DeleteNode): what it held is gone, and any node runs the operation
		}
	}
	op.Node = node
	return Start(ctx, tx, op)
}
