// Package arm is pglink's front door: an HTTP handler that is wire-compatible with Azure
// Resource Manager. It authenticates the caller, parses the resource path, checks the
// api-version, authorizes the request's RBAC action on the scope it addresses (through an
// Authorizer, before the body is read; providers ask for linked checks with
// Request.AuthorizeLinked), makes sure the subscription and resource group exist, dispatches to the resource
// type's handler, turns long-running operations into 200/201 or 202 with polling headers, maps
// errors to ARM error bodies (in one table) and records writes in the activity log: each write
// request's event is appended in the transaction that makes its change (see Audited), or, when
// the request changed nothing, after the handler, whether or not the client is still there.
package arm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Request is a parsed ARM request as a type's Handler sees it.
type Request struct {
	Method        string
	Target        Target
	Action        string // the RBAC action, e.g. "Microsoft.DBforPostgreSQL/flexibleServers/write"
	APIVersion    string
	Body          []byte
	Query         url.Values
	Header        http.Header
	Caller        identity.Principal
	RequestID     string
	CorrelationID string

	endpoint string // absolute base URL, for nextLink
	path     string // the request path, for nextLink
	pageSize int
	audit    *audit           // a write's activity record; nil for reads
	op       *store.Operation // from the Response, for the activity log

	authorizer Authorizer                // nil: nothing is enforced
	perms      Permissions               // the caller's, loaded at most once
	filter     func(store.Resource) bool // for a list the caller may read only in part: which items it may
	filtered   bool                      // the handler applied filter
}

// Response is what a Handler returns.
type Response struct {
	// Status is the success status: 0 means 200, or for a DELETE whose operation finished
	// inline, 204.
	Status int
	Body   any // marshalled as JSON; nil for no body
	// Op, if set, is the long-running operation the request started or joined. The front door
	// waits for it briefly and answers with the final result, or 202 and polling URLs.
	Op *store.Operation

	pollAgain *store.Operation // an operation result that is not ready: 202 with polling headers
}

// Written returns the response to a PUT or PATCH that answers body with status (0 for 200) and,
// if op has an ID, waits for the long-running operation the request started or joined.
func Written(status int, body any, op store.Operation) *Response {
	resp := &Response{Status: status, Body: body}
	if op.ID != "" {
		resp.Op = &op
	}
	return resp
}

// Handler serves the requests of one resource type.
type Handler func(ctx context.Context, req *Request) (*Response, error)

// Type registers a resource type with the front door.
type Type struct {
	Name        string   // full ARM type, e.g. "Microsoft.DBforPostgreSQL/flexibleServers"
	APIVersions []string // supported api-versions
	Handler     Handler
	// NoGroupCheck skips the check that the resource group exists (for the resource group
	// type itself).
	NoGroupCheck bool
	// SelfService types answer any authenticated caller about itself (the caller's own
	// permissions): the front door checks no action; the handler must scope its answer to
	// req.Caller.
	SelfService bool
	// NarrowScope, when set, names the scope a GET confines itself to, narrower than the one it
	// addresses (the activity log's resource group or resource filter), or "": a caller who
	// may not read the addressed scope may still make the request with the action there. The
	// front door takes it only inside the addressed subscription; the handler must serve
	// nothing outside it.
	NarrowScope func(*Request) string

	ownAuthz bool // the handler authorizes (the polling endpoints)
}

// Authenticator verifies the caller of a request.
type Authenticator interface {
	Authenticate(r *http.Request) (identity.Principal, error)
}

// Waiter waits for long-running operations.
type Waiter interface {
	// Wait returns the operation once it is done or d has passed, whichever is first.
	Wait(ctx context.Context, id string, d time.Duration) (store.Operation, error)
}

// Barrier is what must catch up with a change before the API calls it done: the data plane,
// which must enforce an approval or a revocation before clients are told it succeeded. A
// synchronous write the Barrier has not applied within the inline wait (at least 2 s) is
// answered 500 DataPlaneNotApplied: the change is saved and will be enforced, and an
// identical retry is safe.
type Barrier interface {
	// WaitApplied blocks until the change at store revision rev is in effect or ctx is done.
	WaitApplied(ctx context.Context, rev int64) error
}

// Config configures the front door.
type Config struct {
	Endpoint   string        // absolute base URL clients use, e.g. "https://127.0.0.1:8443"
	TenantID   string        // for 401 challenges and the activity log
	InlineWait time.Duration // how long a request waits for its operation (or the Barrier) before answering
	PageSize   int           // items per list page (default 100)
	Barrier    Barrier       // optional: see Barrier
	// Authorizer decides who may do what (see Server.authorize). nil enforces nothing: only
	// tests of the front door itself leave it unset.
	Authorizer Authorizer
}

// Server is the ARM front door. Register all types before serving.
type Server struct {
	cfg   Config
	st    store.Store
	auth  Authenticator
	ops   Waiter
	log   *slog.Logger
	types map[string]*Type // by lower-cased type name
}

// New returns a front door over st, the store itself (not Audited: the front door appends the
// events of requests that changed nothing to st directly).
func New(cfg Config, st store.Store, auth Authenticator, ops Waiter, log *slog.Logger) *Server {
	if cfg.PageSize <= 0 {
		cfg.PageSize = defaultPageSize
	}
	return &Server{cfg: cfg, st: st, auth: auth, ops: ops, log: log.With("component", "arm"), types: map[string]*Type{}}
}

// Register adds resource types. It panics on a duplicate: registration is wiring, not input.
func (s *Server) Register(types ...Type) {
	for _, t := range types {
		k := strings.ToLower(t.Name)
		if _, dup := s.types[k]; dup {
			panic("arm: type registered twice: " + t.Name)
		}
		s.types[k] = &t
	}
}

// Endpoint returns the absolute base URL of the API.
func (s *Server) Endpoint() string { return s.cfg.Endpoint }

// ServeHTTP serves one ARM request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req := &Request{
		Method:        r.Method,
		Query:         r.URL.Query(),
		Header:        r.Header,
		RequestID:     newID(),
		endpoint:      s.cfg.Endpoint,
		path:          r.URL.EscapedPath(),
		pageSize:      s.cfg.PageSize,
		authorizer:    s.cfg.Authorizer,
		CorrelationID: r.Header.Get("x-ms-correlation-request-id"),
	}
	if req.CorrelationID == "" {
		req.CorrelationID = newID()
	}
	h := w.Header()
	h.Set("x-ms-request-id", req.RequestID)
	h.Set("x-ms-correlation-request-id", req.CorrelationID)
	if strings.EqualFold(r.Header.Get("x-ms-return-client-request-id"), "true") {
		h.Set("x-ms-client-request-id", r.Header.Get("x-ms-client-request-id"))
	}
	status, err := s.serve(w, r, req)
	if err != nil {
		// Recorded before the answer, so a client that reads the log next finds it.
		s.recordOutcome(r.Context(), req, 0, err)
		status = writeError(w, s.log, req.RequestID, err)
	} else {
		s.recordOutcome(r.Context(), req, status, nil)
	}
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", status,
		"ms", time.Since(start).Milliseconds(), "request_id", req.RequestID)
}

func isWrite(m string) bool {
	return m == http.MethodPut || m == http.MethodPatch || m == http.MethodDelete || m == http.MethodPost
}

// serve handles a request and writes the success response; an error is written by the caller.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, req *Request) (int, error) {
	p, err := s.auth.Authenticate(r)
	if err != nil && !errors.Is(err, identity.ErrInvalidToken) {
		// The token may be fine: checking its principal failed.
		return 0, fmt.Errorf("authenticate: %w", err)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", identity.Challenge(s.cfg.Endpoint, s.cfg.TenantID))
		msg := "Authentication failed. The 'Authorization' header is missing or invalid."
		if r.Header.Get("Authorization") != "" {
			msg = "The access token is invalid or has expired."
		}
		return 0, resource.Errorf(resource.Unauthenticated, "AuthenticationFailed", "%s", msg)
	}
	req.Caller = p

	t, ok := ParseTarget(r.URL.Path)
	if !ok {
		return 0, resource.Errorf(resource.NotFound, "InvalidRequestUri",
			"The request URI '%s' is not a valid Azure Resource Manager path.", r.URL.Path)
	}
	req.Target = t
	typeName := t.Type
	if t.Collection && r.Method == http.MethodPost {
		typeName = t.ID.Type() // an action on the resource t.ID
	}
	typ := s.types[strings.ToLower(typeName)]
	req.APIVersion = req.Query.Get("api-version")
	if req.APIVersion == "" {
		return 0, resource.Errorf(resource.Invalid, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	if typ == nil {
		ns, _, _ := strings.Cut(typeName, "/")
		return 0, resource.Errorf(resource.Invalid, "InvalidResourceType",
			"The resource type '%s' could not be found in the namespace '%s' for api version '%s'.",
			strings.TrimPrefix(typeName, ns+"/"), ns, req.APIVersion)
	}
	if !slices.Contains(typ.APIVersions, req.APIVersion) {
		return 0, apiVersionError(typ, req.APIVersion)
	}
	req.Action = actionOf(r.Method, t, typ.Name)
	ctx := r.Context()
	if isWrite(r.Method) {
		// From here on the request is a write of a known action: it gets an event.
		req.audit = &audit{target: strings.ToLower(t.Addressed()), entry: activity.Entry{
			TenantID:       s.cfg.TenantID,
			Caller:         callerName(p),
			CallerObjectID: p.ObjectID,
			Operation:      req.Action,
			Scope:          t.Addressed(),
			CorrelationID:  req.CorrelationID,
		}}
		if r.Method == http.MethodDelete {
			req.audit.description = headerDescription(r)
		}
		ctx = withAudit(ctx, req.audit)
	}
	// Authorized before the body is read: a denied write gets its Failed event.
	if err := s.authorize(ctx, req, typ); err != nil {
		return 0, err
	}
	if isWrite(r.Method) {
		body, err := readBody(w, r)
		if err != nil {
			return 0, err
		}
		req.Body = body
		if r.Method == http.MethodPut || r.Method == http.MethodPatch {
			if err := CheckTags(body); err != nil {
				return 0, err
			}
		}
	}
	// A resource that is found has its subscription and group (they are deleted with what they
	// hold): a read of one resource checks its scope only to name what is missing.
	lazyScope := !isWrite(r.Method) && !t.Collection
	if !lazyScope {
		if err := s.checkScope(ctx, t, typ, isWrite(r.Method)); err != nil {
			return 0, err
		}
	}
	resp, err := typ.Handler(ctx, req)
	if err != nil {
		if lazyScope && resource.KindOf(err) == resource.NotFound {
			if serr := s.checkScope(ctx, t, typ, false); serr != nil {
				return 0, serr
			}
		}
		return 0, err
	}
	if err := s.checkFiltered(req); err != nil {
		return 0, err
	}
	return s.respond(w, r.WithContext(ctx), req, typ, resp)
}

// actionOf names the RBAC action of a request as Azure does: POST …/{name} on a resource is
// "{type}/{name}/action", GET and HEAD "{type}/read", DELETE "{type}/delete", PUT and PATCH
// "{type}/write" (see Action for the resource group's spelling).
func actionOf(method string, t Target, typeName string) string {
	switch {
	case method == http.MethodPost && t.Collection:
		return Action(typeName, t.Last+"/action")
	case method == http.MethodGet || method == http.MethodHead:
		return Action(typeName, "read")
	case method == http.MethodDelete:
		return Action(typeName, "delete")
	}
	return Action(typeName, "write")
}

func apiVersionError(t *Type, v string) error {
	list := strings.Join(t.APIVersions, ", ")
	if strings.HasPrefix(strings.ToLower(t.Name), "microsoft.resources/") {
		return resource.Errorf(resource.Invalid, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", v, list)
	}
	return resource.Errorf(resource.Invalid, "NoRegisteredProviderFound",
		"No registered resource provider found for location 'global' and API version '%s' for type '%s'. The supported api-versions are '%s'.",
		v, t.Name, list)
}

// checkScope answers SubscriptionNotFound / ResourceGroupNotFound before any handler runs, as
// ARM does, and refuses a write into a resource group that is being deleted (409
// ResourceGroupBeingDeleted).
func (s *Server) checkScope(ctx context.Context, t Target, typ *Type, write bool) error {
	id := t.ID
	if id.Subscription == "" {
		return nil
	}
	return s.st.View(ctx, func(tx store.Tx) error {
		sub := resource.ID{Subscription: id.Subscription}
		if _, err := tx.Get(ctx, sub.Key()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return resource.NotFoundError(sub)
			}
			return err
		}
		if id.ResourceGroup == "" || typ.NoGroupCheck {
			return nil
		}
		rg := id.ResourceGroupID()
		if write {
			return CheckGroupWritable(ctx, tx, id)
		}
		if _, err := tx.Get(ctx, rg.Key()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return resource.NotFoundError(rg)
			}
			return err
		}
		return nil
	})
}

// respond writes a handler's response, resolving long-running operations.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, req *Request, typ *Type, resp *Response) (int, error) {
	req.op = resp.Op
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if resp.pollAgain != nil {
		s.setPollingHeaders(w.Header(), *resp.pollAgain, req.APIVersion)
		w.WriteHeader(http.StatusAccepted)
		return http.StatusAccepted, nil
	}
	if resp.Op == nil {
		if isWrite(r.Method) && s.cfg.Barrier != nil {
			// A write done in the request (a private endpoint, say) is in effect before it is
			// acknowledged, like an operation's result.
			if err := s.applied(r.Context(), req); err != nil {
				return 0, err
			}
		}
		if resp.Body == nil {
			w.WriteHeader(status)
			return status, nil
		}
		writeJSON(w, status, resp.Body)
		return status, nil
	}
	op, err := s.ops.Wait(r.Context(), resp.Op.ID, s.cfg.InlineWait)
	if err != nil {
		return 0, fmt.Errorf("wait for operation %s: %w", resp.Op.ID, err)
	}
	if !s.settled(r.Context(), op, s.cfg.InlineWait) {
		s.setPollingHeaders(w.Header(), op, req.APIVersion)
		if (r.Method == http.MethodPut || r.Method == http.MethodPatch) && resp.Body != nil {
			writeJSON(w, http.StatusAccepted, resp.Body)
		} else {
			w.WriteHeader(http.StatusAccepted)
		}
		return http.StatusAccepted, nil
	}
	if op.Status != store.OpSucceeded {
		return 0, DecodeError(op.Error)
	}
	switch r.Method {
	case http.MethodPut, http.MethodPatch:
		body, err := s.current(r.Context(), req, typ)
		if err != nil {
			return 0, err
		}
		writeJSON(w, status, body)
		return status, nil
	}
	if r.Method == http.MethodDelete {
		// Done already: 204 unless the type says otherwise (resource groups answer 200).
		if resp.Status == 0 {
			status = http.StatusNoContent
		}
		w.WriteHeader(status)
		return status, nil
	}
	w.WriteHeader(http.StatusOK)
	return http.StatusOK, nil
}

// applied waits until the Barrier has applied every change committed so far, at most the
// inline wait (and at least 2 s). It fails with 500 DataPlaneNotApplied if the Barrier does
// not get there in time.
func (s *Server) applied(ctx context.Context, req *Request) error {
	rev, err := s.st.Revision(ctx)
	if err != nil {
		return fmt.Errorf("read revision: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, max(s.cfg.InlineWait, 2*time.Second))
	defer cancel()
	err = s.cfg.Barrier.WaitApplied(wctx, rev)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // the client is gone; nobody hears the answer
	}
	s.log.Warn("data plane did not apply a change in time", "revision", rev, "request_id", req.RequestID, "err", err)
	if _, perr := s.st.Revision(ctx); errors.Is(err, store.ErrUnavailable) || errors.Is(perr, store.ErrUnavailable) {
		return resource.Errorf(resource.Unavailable, "ServiceUnavailable",
			"The change was saved, but pglink cannot confirm that the data plane enforces it while its store is unavailable. "+
				"Repeat the request after the time in Retry-After (it is safe to) or read the resource to check.")
	}
	return resource.Errorf(resource.Internal, "DataPlaneNotApplied",
		"The change was saved, but the data plane has not applied it yet; it will be enforced when the data plane catches up. "+
			"Repeat the request (it is safe to) or read the resource to check. Tracking ID: '%s'", req.RequestID)
}

// settled reports whether op is done and, if a Barrier is set, in effect, waiting at most d
// for the barrier.
func (s *Server) settled(ctx context.Context, op store.Operation, d time.Duration) bool {
	if !op.Done() {
		return false
	}
	if s.cfg.Barrier == nil || op.Status != store.OpSucceeded {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, max(d, 100*time.Millisecond))
	defer cancel()
	return s.cfg.Barrier.WaitApplied(ctx, op.Revision) == nil
}

// current re-reads the resource a request addressed, through its type's GET.
func (s *Server) current(ctx context.Context, req *Request, typ *Type) (any, error) {
	get := *req
	get.Method = http.MethodGet
	get.Body = nil
	resp, err := typ.Handler(ctx, &get)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// newID returns a random UUID-shaped identifier.
func newID() string { return resource.NewGUID() }

// NewOperationID returns an identifier for a new long-running operation.
func NewOperationID() string { return newID() }

func callerName(p identity.Principal) string {
	if p.Kind == "User" {
		return p.Name
	}
	if p.AppID != "" {
		return p.AppID
	}
	return p.ObjectID
}

// headerDescription returns the DescriptionHeader of r, percent-decoded, or "" if it is absent,
// not UTF-8, holds control characters or is longer than 512 characters.
func headerDescription(r *http.Request) string {
	raw := r.Header.Get(DescriptionHeader)
	d, err := url.PathUnescape(raw)
	if raw == "" || err != nil || !utf8.ValidString(d) || utf8.RuneCountInString(d) > 512 ||
		strings.IndexFunc(d, unicode.IsControl) >= 0 {
		return ""
	}
	return d
}
