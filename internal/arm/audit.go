package arm

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/store"
)

// audit is the activity log record of one write request. ServeHTTP makes it before the
// handler runs and puts it in the handler's context. The store that Audited returns appends
// the request's event inside the transaction that makes the request's change; ServeHTTP
// appends it afterwards only if no transaction did (the request failed or changed nothing).
// Either way a write request gets exactly one event.
type audit struct {
	entry  activity.Entry // the facts known before the handler runs
	target string         // Key of the resource the request addresses

	mu          sync.Mutex
	description string // guarded by mu
	recorded    bool   // guarded by mu: the request's event is committed
}

type auditKey struct{}

func withAudit(ctx context.Context, a *audit) context.Context {
	return context.WithValue(ctx, auditKey{}, a)
}

func auditOf(ctx context.Context) *audit {
	a, _ := ctx.Value(auditKey{}).(*audit)
	return a
}

// Describe sets the description of the request's activity log event (e.g. the reason given
// for an approval). Call it before the transaction that makes the change.
func (r *Request) Describe(description string) {
	if r.audit == nil {
		return
	}
	r.audit.mu.Lock()
	r.audit.description = description
	r.audit.mu.Unlock()
}

// description returns the description of the request's activity log event so far.
func (r *Request) description() string {
	if r.audit == nil {
		return ""
	}
	r.audit.mu.Lock()
	defer r.audit.mu.Unlock()
	return r.audit.description
}

// DescriptionHeader carries a reason for a DELETE, which has no body to say it in (the portal
// sends the Description typed when removing a connection), percent-encoded UTF-8: it becomes the
// description of the request's activity log event. At most 512 characters; a longer one, or one
// with control characters, is ignored.
const DescriptionHeader = "X-Pglink-Description"

func (a *audit) isRecorded() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.recorded
}

func (a *audit) markRecorded() {
	a.mu.Lock()
	a.recorded = true
	a.mu.Unlock()
}

// entryNow returns the request's activity entry as of now.
func (a *audit) entryNow() activity.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entry
	e.Description = a.description
	e.Time = time.Now()
	return e
}

// Audited returns st with the activity log built into its transactions: an Update whose
// context carries a write request's audit record (the context ServeHTTP gives handlers does)
// appends the request's event in that same transaction, after fn returns nil, if fn wrote
// something and no earlier transaction of the request recorded the event. The event is
// "Started" with the operation's id if fn started a long-running operation (its worker records
// how it ended), otherwise "Succeeded" with subStatus "Created" if fn created the resource the
// request addresses and "OK" if not. Everything else passes through to st.
//
// Providers get the audited store, so none can make a change without its event; operation
// workers and the data plane use st itself.
func Audited(st store.Store) store.Store { return &audited{Store: st} }

var _ store.Store = (*audited)(nil)

type audited struct {
	store.Store
}

// Update runs fn in st's Update; see Audited.
func (s *audited) Update(ctx context.Context, fn func(store.Tx) error) error {
	a := auditOf(ctx)
	if a == nil || a.isRecorded() {
		return s.Store.Update(ctx, fn)
	}
	appended := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		appended = false // the backend may run fn again
		at := &auditTx{Tx: tx, a: a}
		if err := fn(at); err != nil {
			return err
		}
		if !at.wrote {
			return nil
		}
		e := a.entryNow()
		switch {
		case at.op != "":
			e.Status, e.StatusCode, e.OperationID = "Started", "Accepted", at.op
		case at.created:
			e.Status, e.StatusCode = "Succeeded", "Created"
		default:
			e.Status, e.StatusCode = "Succeeded", "OK"
		}
		ev, err := activity.Build(e)
		if err != nil {
			return err
		}
		if err := tx.AppendEvent(ctx, ev); err != nil {
			return err
		}
		appended = true
		return nil
	})
	if err == nil && appended {
		a.markRecorded()
	}
	return err
}

// auditTx watches what a request's transaction writes.
type auditTx struct {
	store.Tx
	a       *audit
	wrote   bool
	checked bool   // whether the target existed before its first Put is known
	created bool   // the transaction created the target
	op      string // id of the last InProgress operation the transaction stored
}

func (t *auditTx) Put(ctx context.Context, r store.Resource, ifETag string) (store.Resource, error) {
	if r.Key == t.a.target && !t.checked {
		_, err := t.Tx.Get(ctx, r.Key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			t.created = true
		case err != nil:
			return store.Resource{}, err
		}
		t.checked = true
	}
	out, err := t.Tx.Put(ctx, r, ifETag)
	if err == nil {
		t.wrote = true
	}
	return out, err
}

func (t *auditTx) Delete(ctx context.Context, key string) error {
	err := t.Tx.Delete(ctx, key)
	if err == nil {
		t.wrote = true
		if key == t.a.target {
			t.checked = true // a later Put re-creates it: not a create for the log
		}
	}
	return err
}

func (t *auditTx) PutOperation(ctx context.Context, op store.Operation) (store.Operation, error) {
	out, err := t.Tx.PutOperation(ctx, op)
	if err == nil {
		t.wrote = true
		if op.Status == store.OpInProgress {
			t.op = op.ID
		}
	}
	return out, err
}

func (t *auditTx) PutPrincipal(ctx context.Context, p store.Principal) error {
	err := t.Tx.PutPrincipal(ctx, p)
	if err == nil {
		t.wrote = true
	}
	return err
}

func (t *auditTx) DeletePrincipal(ctx context.Context, objectID string) error {
	err := t.Tx.DeletePrincipal(ctx, objectID)
	if err == nil {
		t.wrote = true
	}
	return err
}

// recordOutcome appends the event of a write request whose transactions recorded none: one
// that failed, changed nothing, or joined an operation in flight. It runs whether or not the
// client is still there.
func (s *Server) recordOutcome(ctx context.Context, req *Request, status int, err error) {
	a := req.audit
	if a == nil || a.isRecorded() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e := a.entryNow()
	e.StatusCode = strings.ReplaceAll(http.StatusText(status), " ", "")
	switch {
	case err != nil:
		ue := ToUserError(err, req.RequestID)
		e.Status, e.ErrorCode, e.ErrorMessage = "Failed", ue.Code, ue.Message
		e.StatusCode = strings.ReplaceAll(http.StatusText(statusOf[ue.Kind]), " ", "")
	case req.op != nil:
		e.Status, e.OperationID = "Started", req.op.ID // the operation's worker records how it ended
	case status == http.StatusAccepted:
		e.Status = "Accepted"
	default:
		e.Status = "Succeeded"
	}
	if rerr := activity.Record(ctx, s.st, e); rerr != nil {
		s.log.Error("record activity", "request_id", req.RequestID, "err", rerr)
		return
	}
	a.markRecorded()
}
