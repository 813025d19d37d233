package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Actions of the identity admin API. A caller needs the action at the root scope ("/"), granted
// by a role assignment like any other: Owner has them all, Reader the reads. Whoever may write
// service principals or users may take over any principal, so grant the writes as carefully
// as Owner at the root.
const (
	ActionUsersRead   = "Microsoft.Directory/users/read"
	ActionUsersWrite  = "Microsoft.Directory/users/write"
	ActionUsersDelete = "Microsoft.Directory/users/delete"
	ActionSPsRead     = "Microsoft.Directory/servicePrincipals/read"
	ActionSPsWrite    = "Microsoft.Directory/servicePrincipals/write"
	ActionSPsDelete   = "Microsoft.Directory/servicePrincipals/delete"
)

// Bounds of the API.
const (
	maxBodyBytes    = 16 << 10
	maxNameLen      = 256
	defaultPageSize = 100
	maxPageSize     = 999
	maxYears        = 100 // the furthest a password credential may end
)

// APIConfig configures Handler.
type APIConfig struct {
	TenantID string
	// Subscription is the subscription whose activity log records directory changes.
	Subscription string
	// Authenticate returns the caller of a request; errors wrapping identity.ErrInvalidToken
	// are answered 401.
	Authenticate func(*http.Request) (identity.Principal, error)
	// Allowed reports whether principalID may perform action at the root scope.
	Allowed func(ctx context.Context, principalID, action string) (bool, error)
	Logger  *slog.Logger
}

type api struct {
	cfg APIConfig
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

// Handler returns the identity admin API, rooted at "/v1.0/" (a Microsoft Graph–shaped subset):
//
//	GET    /v1.0/me                                      the caller
//	GET    /v1.0/users[?$filter=userPrincipalName eq 'U'][&$top=N]
//	POST   /v1.0/users                                   {userPrincipalName, displayName, passwordProfile{password}, accountEnabled}
//	GET|PATCH|DELETE /v1.0/users/{objectId|upn}          PATCH: accountEnabled, displayName, passwordProfile
//	GET    /v1.0/servicePrincipals[?$filter=displayName eq 'N' | appId eq 'A'][&$top=N]
//	POST   /v1.0/servicePrincipals                       {displayName}: a new app id and object id
//	GET|PATCH|DELETE /v1.0/servicePrincipals/{objectId|appId}   PATCH: accountEnabled, displayName
//	POST   /v1.0/servicePrincipals/{id}/addPassword      {passwordCredential{displayName, endDateTime}}: the secret, once
//	POST   /v1.0/servicePrincipals/{id}/removePassword   {keyId}
//
// Lists page with $top and @odata.nextLink. Disabling a principal, deleting it or resetting a
// user's password closes its sessions; its access tokens stop working at the next request.
// Every write is recorded in the activity log in the transaction that makes it; denied
// requests are recorded too.
func Handler(st store.Store, cfg APIConfig) http.Handler {
	a := &api{cfg: cfg, st: st, log: cfg.Logger, now: time.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1.0/me", a.me)
	mux.HandleFunc("GET /v1.0/users", a.listUsers)
	mux.HandleFunc("POST /v1.0/users", a.createUser)
	mux.HandleFunc("GET /v1.0/users/{id}", a.getUser)
	mux.HandleFunc("PATCH /v1.0/users/{id}", a.updateUser)
	mux.HandleFunc("DELETE /v1.0/users/{id}", a.deleteUser)
	mux.HandleFunc("GET /v1.0/servicePrincipals", a.listSPs)
	mux.HandleFunc("POST /v1.0/servicePrincipals", a.createSP)
	mux.HandleFunc("GET /v1.0/servicePrincipals/{id}", a.getSP)
	mux.HandleFunc("PATCH /v1.0/servicePrincipals/{id}", a.updateSP)
	mux.HandleFunc("DELETE /v1.0/servicePrincipals/{id}", a.deleteSP)
	mux.HandleFunc("POST /v1.0/servicePrincipals/{id}/addPassword", a.addPassword)
	mux.HandleFunc("POST /v1.0/servicePrincipals/{id}/removePassword", a.removePassword)
	mux.HandleFunc("/v1.0/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, "Request_ResourceNotFound",
			fmt.Sprintf("Resource not found for the segment '%s'.", strings.TrimPrefix(r.URL.Path, "/v1.0/"))})
	})
	return mux
}

// apiError is an error answer in Graph's shape.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errBadRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf(format, args...)}
}

func errNotFound(id string) *apiError {
	return &apiError{http.StatusNotFound, "Request_ResourceNotFound",
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)}
}

var errDenied = &apiError{http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]any{
		"code": e.code, "message": e.msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format(time.RFC3339), "request-id": resource.NewGUID()},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the status is sent; a failed write means the client went away
}

// call is one authenticated request.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	caller identity.Principal
}

// begin authenticates r and checks action ("" for none); it answers and returns nil if either
// fails.
func (a *api) begin(w http.ResponseWriter, r *http.Request, action, target string) *call {
	p, err := a.cfg.Authenticate(r)
	if err != nil {
		if errors.Is(err, identity.ErrInvalidToken) {
			writeError(w, &apiError{http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience, signature, expiry or principal."})
			return nil
		}
		a.log.Error("directory: authenticate", "err", err)
		writeError(w, &apiError{http.StatusInternalServerError, "InternalServerError", "Could not check the caller; try again."})
		return nil
	}
	c := &call{w: w, r: r, caller: p}
	if action != "" && !a.authorize(c, action, target) {
		return nil
	}
	return c
}

// authorize reports whether c's caller may perform action; if not, it answers, and records a
// denied write in the activity log.
func (a *api) authorize(c *call, action, target string) bool {
	ok, err := a.cfg.Allowed(c.r.Context(), c.caller.ObjectID, action)
	if err != nil {
		a.log.Error("directory: authorize", "err", err)
		writeError(c.w, &apiError{http.StatusInternalServerError, "InternalServerError", "Could not check the caller's roles; try again."})
		return false
	}
	if ok {
		return true
	}
	if !strings.HasSuffix(action, "/read") {
		e := a.entry(c, action, target, "Failed", "Forbidden")
		e.ErrorCode, e.ErrorMessage = errDenied.code, errDenied.msg
		if err := a.record(c.r.Context(), e); err != nil {
			a.log.Error("directory: record denial", "err", err)
		}
	}
	writeError(c.w, errDenied)
	return false
}

// entry returns the activity entry of a directory change by c to target (an object id).
func (a *api) entry(c *call, action, target, status, statusCode string) activity.Entry {
	kind := "users"
	if strings.Contains(action, "/servicePrincipals/") {
		kind = "servicePrincipals"
	}
	scope := "/providers/Microsoft.Directory/" + kind
	if target != "" {
		scope += "/" + target
	}
	name := c.caller.Name
	if c.caller.Kind == KindServicePrincipal && c.caller.AppID != "" {
		name = c.caller.AppID
	}
	return activity.Entry{Time: a.now(), TenantID: a.cfg.TenantID, Caller: name, CallerObjectID: c.caller.ObjectID,
		Operation: action, Scope: scope, Status: status, StatusCode: statusCode,
		CorrelationID: correlationID(c.r)}
}

func correlationID(r *http.Request) string {
	for _, h := range []string{"client-request-id", "x-ms-client-request-id", "x-ms-correlation-request-id"} {
		if v := r.Header.Get(h); v != "" && len(v) <= 128 {
			return v
		}
	}
	return resource.NewGUID()
}

// appendEvent appends e, assigned to the configured subscription, in tx.
func (a *api) appendEvent(ctx context.Context, tx store.Tx, e activity.Entry) error {
	e.Subscription = a.cfg.Subscription
	ev, err := activity.Build(e)
	if err != nil {
		return err
	}
	return tx.AppendEvent(ctx, ev)
}

// record appends e in a transaction of its own, whether or not the client is still there: the
// event of a request that changed nothing.
func (a *api) record(ctx context.Context, e activity.Entry) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return a.st.Update(ctx, func(tx store.Tx) error { return a.appendEvent(ctx, tx, e) })
}

// decodeBody reads a JSON body of at most maxBodyBytes into v, refusing unknown properties.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			return &apiError{http.StatusRequestEntityTooLarge, "Request_BadRequest", fmt.Sprintf("The request body is larger than %d KiB.", maxBodyBytes>>10)}
		}
		return errBadRequest("Could not read the request body.")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return errBadRequest("Property '%s' has the wrong type: expected %s.", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return errBadRequest("Property %s does not exist on this resource.", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return errBadRequest("The request body is not a valid JSON object: %v.", err)
	}
	if dec.More() {
		return errBadRequest("The request body has data after its JSON object.")
	}
	return nil
}

// Graph shapes.

type passwordCredentialOut struct {
	KeyID         string    `json:"keyId"`
	DisplayName   string    `json:"displayName"`
	Hint          string    `json:"hint"`
	StartDateTime time.Time `json:"startDateTime"`
	EndDateTime   time.Time `json:"endDateTime"`
	SecretText    *string   `json:"secretText,omitempty"`
}

type userOut struct {
	ODataType         string    `json:"@odata.type,omitempty"`
	ID                string    `json:"id"`
	UserPrincipalName string    `json:"userPrincipalName"`
	DisplayName       string    `json:"displayName"`
	AccountEnabled    bool      `json:"accountEnabled"`
	CreatedDateTime   time.Time `json:"createdDateTime,omitzero"`
}

type spOut struct {
	ODataType            string                  `json:"@odata.type,omitempty"`
	ID                   string                  `json:"id"`
	AppID                string                  `json:"appId"`
	DisplayName          string                  `json:"displayName"`
	AccountEnabled       bool                    `json:"accountEnabled"`
	ServicePrincipalType string                  `json:"servicePrincipalType"`
	ServicePrincipalName []string                `json:"servicePrincipalNames"`
	AppOwnerOrgID        string                  `json:"appOwnerOrganizationId"`
	CreatedDateTime      time.Time               `json:"createdDateTime,omitzero"`
	PasswordCredentials  []passwordCredentialOut `json:"passwordCredentials"`
}

func (a *api) userOut(p store.Principal, d doc) userOut {
	return userOut{ID: p.ObjectID, UserPrincipalName: p.Login, DisplayName: d.DisplayName, AccountEnabled: !d.Disabled, CreatedDateTime: d.Created}
}

func (a *api) spOut(p store.Principal, d doc) spOut {
	out := spOut{ID: p.ObjectID, AppID: d.AppID, DisplayName: d.DisplayName, AccountEnabled: !d.Disabled,
		ServicePrincipalType: "Application", ServicePrincipalName: []string{d.AppID}, AppOwnerOrgID: a.cfg.TenantID,
		CreatedDateTime: d.Created, PasswordCredentials: []passwordCredentialOut{}}
	for _, c := range d.Credentials {
		out.PasswordCredentials = append(out.PasswordCredentials, passwordCredentialOut{KeyID: c.KeyID, DisplayName: c.DisplayName,
			Hint: c.Hint, StartDateTime: c.Start, EndDateTime: c.End})
	}
	return out
}

func (a *api) out(p store.Principal, d doc) any {
	if d.Kind == KindUser {
		u := a.userOut(p, d)
		u.ODataType = "#microsoft.graph.user"
		return u
	}
	s := a.spOut(p, d)
	s.ODataType = "#microsoft.graph.servicePrincipal"
	return s
}

func (a *api) me(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, "", "")
	if c == nil {
		return
	}
	p, d, aerr := a.find(r.Context(), c.caller.ObjectID, "")
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, a.out(p, d))
}

// find returns the principal id names (object id or login) if it is of kind ("" for any).
func (a *api) find(ctx context.Context, id, kind string) (store.Principal, doc, *apiError) {
	var (
		p   store.Principal
		d   doc
		err error
	)
	err = a.st.View(ctx, func(tx store.Tx) error {
		p, d, err = findTx(ctx, tx, id, kind)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return p, d, errNotFound(id)
	}
	if err != nil {
		a.log.Error("directory: read principal", "err", err)
		return p, d, &apiError{http.StatusInternalServerError, "InternalServerError", "Could not read the directory; try again."}
	}
	return p, d, nil
}

func findTx(ctx context.Context, tx store.Tx, id, kind string) (store.Principal, doc, error) {
	if id == "" {
		return store.Principal{}, doc{}, store.ErrNotFound
	}
	p, err := tx.Principal(ctx, id)
	if err != nil {
		return p, doc{}, err
	}
	d, err := decode(p)
	if err != nil {
		return p, d, err
	}
	if kind != "" && d.Kind != kind {
		return p, d, store.ErrNotFound
	}
	return p, d, nil
}

// filterRE matches the $filter forms the API serves: property eq 'value'.
var filterRE = regexp.MustCompile(`^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$`)

// list answers a list of principals of kind, with an optional $filter on one of props.
func (a *api) list(w http.ResponseWriter, r *http.Request, kind string, props map[string]func(store.Principal, doc) string) {
	q := r.URL.Query()
	top := defaultPageSize
	if s := q.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, errBadRequest("Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", s, maxPageSize))
			return
		}
		top = n
	}
	var match func(store.Principal, doc) bool
	if f := q.Get("$filter"); f != "" {
		m := filterRE.FindStringSubmatch(f)
		get, ok := props[strings.ToLower(safeIndex(m, 1))]
		if m == nil || !ok {
			writeError(w, errBadRequest("Unsupported query: $filter supports only %s eq 'value'.", strings.Join(propNames(props), " or ")))
			return
		}
		want := strings.ReplaceAll(m[2], "''", "'")
		match = func(p store.Principal, d doc) bool { return strings.EqualFold(get(p, d), want) }
	}
	after := q.Get("$skiptoken")
	var out []any
	next := ""
	// Principals of both kinds share one table: read in batches until a page is full.
	err := a.st.View(r.Context(), func(tx store.Tx) error {
		out, next = nil, ""
		cursor := after
		for {
			ps, err := tx.Principals(r.Context(), cursor, 500)
			if err != nil {
				return err
			}
			for _, p := range ps {
				cursor = p.ObjectID
				d, err := decode(p)
				if err != nil || d.Kind != kind || (match != nil && !match(p, d)) {
					continue
				}
				if len(out) == top {
					next = out[len(out)-1].(interface{ objectID() string }).objectID()
					return nil
				}
				out = append(out, a.out(p, d))
			}
			if len(ps) < 500 {
				return nil
			}
		}
	})
	if err != nil {
		a.log.Error("directory: list principals", "err", err)
		writeError(w, &apiError{http.StatusInternalServerError, "InternalServerError", "Could not read the directory; try again."})
		return
	}
	body := map[string]any{"value": nonNil(out)}
	if next != "" {
		u := *r.URL
		qq := u.Query()
		qq.Set("$skiptoken", next)
		u.RawQuery = qq.Encode()
		body["@odata.nextLink"] = "https://" + r.Host + u.RequestURI()
	}
	writeJSON(w, http.StatusOK, body)
}

func (u userOut) objectID() string { return u.ID }
func (s spOut) objectID() string   { return s.ID }

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func safeIndex(m []string, i int) string {
	if i < len(m) {
		return m[i]
	}
	return ""
}

func propNames(props map[string]func(store.Principal, doc) string) []string {
	var names []string
	for _, n := range []string{"displayName", "appId", "userPrincipalName"} {
		if _, ok := props[strings.ToLower(n)]; ok {
			names = append(names, n)
		}
	}
	return names
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) {
	if a.begin(w, r, ActionUsersRead, "") == nil {
		return
	}
	a.list(w, r, KindUser, map[string]func(store.Principal, doc) string{
		"userprincipalname": func(p store.Principal, _ doc) string { return p.Login },
		"displayname":       func(_ store.Principal, d doc) string { return d.DisplayName },
	})
}

func (a *api) listSPs(w http.ResponseWriter, r *http.Request) {
	if a.begin(w, r, ActionSPsRead, "") == nil {
		return
	}
	a.list(w, r, KindServicePrincipal, map[string]func(store.Principal, doc) string{
		"displayname": func(_ store.Principal, d doc) string { return d.DisplayName },
		"appid":       func(_ store.Principal, d doc) string { return d.AppID },
	})
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) { a.get(w, r, KindUser, ActionUsersRead) }
func (a *api) getSP(w http.ResponseWriter, r *http.Request) {
	a.get(w, r, KindServicePrincipal, ActionSPsRead)
}

func (a *api) get(w http.ResponseWriter, r *http.Request, kind, action string) {
	id := r.PathValue("id")
	c := a.begin(w, r, "", "")
	if c == nil {
		return
	}
	// Anyone may read themselves; reading others, or learning whether they exist, takes the
	// read action.
	p, d, aerr := a.find(r.Context(), id, kind)
	if (aerr != nil || !strings.EqualFold(p.ObjectID, c.caller.ObjectID)) && !a.authorize(c, action, "") {
		return
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, a.out(p, d))
}

// write runs fn on the principal id names (of kind) in one transaction with the activity log
// event of the change, and answers status and fn's result. A missing principal is 404. If fn
// fails nothing is written; an *apiError from fn is the answer, any other error a 500.
func (a *api) write(c *call, action, id, kind string, status int, fn func(tx store.Tx, p *store.Principal, d *doc) (any, error)) {
	var (
		out    any
		target string
	)
	err := a.st.Update(c.r.Context(), func(tx store.Tx) error {
		out = nil
		p, d, err := findTx(c.r.Context(), tx, id, kind)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound(id)
		}
		if err != nil {
			return err
		}
		target = p.ObjectID
		if out, err = fn(tx, &p, &d); err != nil {
			return err
		}
		return a.appendEvent(c.r.Context(), tx, a.entry(c, action, p.ObjectID, "Succeeded", http.StatusText(status)))
	})
	var aerr *apiError
	if errors.As(err, &aerr) {
		err = nil
	}
	a.finish(c, action, target, status, out, aerr, err)
}

// finish answers a write and records a failed one.
func (a *api) finish(c *call, action, target string, status int, out any, aerr *apiError, err error) {
	if err != nil {
		a.log.Error("directory: write", "action", action, "err", err)
		aerr = &apiError{http.StatusInternalServerError, "InternalServerError", "Could not write the directory; nothing was changed. Try again."}
	}
	if aerr != nil {
		e := a.entry(c, action, target, "Failed", http.StatusText(aerr.status))
		e.ErrorCode, e.ErrorMessage = aerr.code, aerr.msg
		if rerr := a.record(c.r.Context(), e); rerr != nil {
			a.log.Error("directory: record failure", "err", rerr)
		}
		writeError(c.w, aerr)
		return
	}
	writeJSON(c.w, status, out)
}

// create stores a new principal made by fn, with its event, in one transaction.
func (a *api) create(c *call, action string, p store.Principal, d doc, out func(store.Principal, doc) any) {
	err := a.st.Update(c.r.Context(), func(tx store.Tx) error {
		if _, err := tx.Principal(c.r.Context(), p.Login); err == nil {
			prop := "userPrincipalName"
			if d.Kind == KindServicePrincipal {
				prop = "appId"
			}
			return errBadRequest("Another object with the same value for property %s already exists.", prop)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.PutPrincipal(c.r.Context(), p); err != nil {
			return err
		}
		return a.appendEvent(c.r.Context(), tx, a.entry(c, action, p.ObjectID, "Succeeded", "Created"))
	})
	var aerr *apiError
	if errors.As(err, &aerr) {
		err = nil
	}
	var body any
	if aerr == nil && err == nil {
		body = out(p, d)
	}
	a.finish(c, action, p.ObjectID, http.StatusCreated, body, aerr, err)
}

type passwordProfile struct {
	Password                      *string `json:"password"`
	ForceChangePasswordNextSignIn *bool   `json:"forceChangePasswordNextSignIn"`
}

type userIn struct {
	UserPrincipalName *string          `json:"userPrincipalName"`
	DisplayName       *string          `json:"displayName"`
	MailNickname      *string          `json:"mailNickname"`
	AccountEnabled    *bool            `json:"accountEnabled"`
	PasswordProfile   *passwordProfile `json:"passwordProfile"`
}

var upnRE = regexp.MustCompile(`^[A-Za-z0-9._%+'-]{1,113}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$`)

func checkDisplayName(s *string, required bool) *apiError {
	if s == nil {
		if required {
			return errBadRequest("Property displayName is required.")
		}
		return nil
	}
	if strings.TrimSpace(*s) == "" || len(*s) > maxNameLen || strings.IndexFunc(*s, unicode.IsControl) >= 0 {
		return errBadRequest("Property displayName must be 1 to %d printable characters.", maxNameLen)
	}
	return nil
}

// checkPassword applies Entra ID's complexity rule: 8 to 256 characters (pglink: 72 bytes,
// bcrypt's limit) with three of lower case, upper case, digits and symbols.
func checkPassword(pw string) *apiError {
	classes := 0
	for _, f := range []func(rune) bool{unicode.IsLower, unicode.IsUpper, unicode.IsDigit,
		func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }} {
		if strings.IndexFunc(pw, f) >= 0 {
			classes++
		}
	}
	if len([]rune(pw)) < 8 || len(pw) > 72 || classes < 3 {
		return errBadRequest("The specified password does not comply with password complexity requirements: use 8 to 72 bytes with three of lower case letters, upper case letters, digits and symbols.")
	}
	return nil
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, ActionUsersWrite, "")
	if c == nil {
		return
	}
	var in userIn
	if aerr := decodeBody(w, r, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	if in.UserPrincipalName == nil || !upnRE.MatchString(*in.UserPrincipalName) || len(*in.UserPrincipalName) > maxNameLen {
		writeError(w, errBadRequest("Property userPrincipalName must be a name and a domain, such as alice@contoso.com."))
		return
	}
	if in.DisplayName == nil { // az ad user create requires it; default to the UPN's name
		name, _, _ := strings.Cut(*in.UserPrincipalName, "@")
		in.DisplayName = &name
	}
	if aerr := checkDisplayName(in.DisplayName, true); aerr != nil {
		writeError(w, aerr)
		return
	}
	if in.PasswordProfile == nil || in.PasswordProfile.Password == nil {
		writeError(w, errBadRequest("Property passwordProfile.password is required."))
		return
	}
	if aerr := checkPassword(*in.PasswordProfile.Password); aerr != nil {
		writeError(w, aerr)
		return
	}
	hash, err := identity.HashSecret(*in.PasswordProfile.Password)
	if err != nil {
		writeError(w, errBadRequest("The password cannot be stored: %v.", err))
		return
	}
	d := doc{Kind: KindUser, DisplayName: *in.DisplayName, SecretHash: hash, Created: a.now().UTC().Truncate(time.Second)}
	if in.AccountEnabled != nil {
		d.Disabled = !*in.AccountEnabled
	}
	p := store.Principal{ObjectID: resource.NewGUID(), Login: *in.UserPrincipalName, Body: encode(d)}
	a.create(c, ActionUsersWrite, p, d, a.out)
}

func (a *api) updateUser(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, ActionUsersWrite, r.PathValue("id"))
	if c == nil {
		return
	}
	var in userIn
	if aerr := decodeBody(w, r, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	if in.UserPrincipalName != nil {
		writeError(w, errBadRequest("Property userPrincipalName cannot be changed: create a new user."))
		return
	}
	if aerr := checkDisplayName(in.DisplayName, false); aerr != nil {
		writeError(w, aerr)
		return
	}
	var hash string
	if in.PasswordProfile != nil && in.PasswordProfile.Password != nil {
		if aerr := checkPassword(*in.PasswordProfile.Password); aerr != nil {
			writeError(w, aerr)
			return
		}
		var err error
		if hash, err = identity.HashSecret(*in.PasswordProfile.Password); err != nil {
			writeError(w, errBadRequest("The password cannot be stored: %v.", err))
			return
		}
	}
	a.write(c, ActionUsersWrite, r.PathValue("id"), KindUser, http.StatusNoContent, func(tx store.Tx, p *store.Principal, d *doc) (any, error) {
		if in.DisplayName != nil {
			d.DisplayName = *in.DisplayName
		}
		if in.AccountEnabled != nil {
			d.Disabled = !*in.AccountEnabled
		}
		if hash != "" {
			d.SecretHash = hash
			d.Sessions, d.Codes = nil, nil // a password reset signs the user out everywhere
		}
		if d.Disabled {
			d.Sessions, d.Codes = nil, nil
		}
		p.Body = encode(*d)
		return nil, tx.PutPrincipal(c.r.Context(), *p)
	})
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) {
	a.delete(w, r, KindUser, ActionUsersDelete)
}

func (a *api) deleteSP(w http.ResponseWriter, r *http.Request) {
	a.delete(w, r, KindServicePrincipal, ActionSPsDelete)
}

// delete removes a principal. Its role assignments stay, as in Azure, and name an object id that
// no principal has; its tokens stop working at their next request.
func (a *api) delete(w http.ResponseWriter, r *http.Request, kind, action string) {
	c := a.begin(w, r, action, r.PathValue("id"))
	if c == nil {
		return
	}
	a.write(c, action, r.PathValue("id"), kind, http.StatusNoContent, func(tx store.Tx, p *store.Principal, _ *doc) (any, error) {
		return nil, tx.DeletePrincipal(c.r.Context(), p.ObjectID)
	})
}

type spIn struct {
	DisplayName    *string `json:"displayName"`
	AccountEnabled *bool   `json:"accountEnabled"`
	AppID          *string `json:"appId"`
}

func (a *api) createSP(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, ActionSPsWrite, "")
	if c == nil {
		return
	}
	var in spIn
	if aerr := decodeBody(w, r, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	if in.AppID != nil {
		writeError(w, errBadRequest("Property appId is assigned by pglink: leave it out."))
		return
	}
	if aerr := checkDisplayName(in.DisplayName, true); aerr != nil {
		writeError(w, aerr)
		return
	}
	appID := resource.NewGUID()
	d := doc{Kind: KindServicePrincipal, DisplayName: *in.DisplayName, AppID: appID, Created: a.now().UTC().Truncate(time.Second)}
	if in.AccountEnabled != nil {
		d.Disabled = !*in.AccountEnabled
	}
	a.create(c, ActionSPsWrite, store.Principal{ObjectID: resource.NewGUID(), Login: appID, Body: encode(d)}, d, a.out)
}

func (a *api) updateSP(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, ActionSPsWrite, r.PathValue("id"))
	if c == nil {
		return
	}
	var in spIn
	if aerr := decodeBody(w, r, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	if in.AppID != nil {
		writeError(w, errBadRequest("Property appId cannot be changed."))
		return
	}
	if aerr := checkDisplayName(in.DisplayName, false); aerr != nil {
		writeError(w, aerr)
		return
	}
	a.write(c, ActionSPsWrite, r.PathValue("id"), KindServicePrincipal, http.StatusNoContent, func(tx store.Tx, p *store.Principal, d *doc) (any, error) {
		if in.DisplayName != nil {
			d.DisplayName = *in.DisplayName
		}
		if in.AccountEnabled != nil {
			d.Disabled = !*in.AccountEnabled
		}
		p.Body = encode(*d)
		return nil, tx.PutPrincipal(c.r.Context(), *p)
	})
}

type addPasswordIn struct {
	PasswordCredential *struct {
		DisplayName   *string    `json:"displayName"`
		StartDateTime *time.Time `json:"startDateTime"`
		EndDateTime   *time.Time `json:"endDateTime"`
	} `json:"passwordCredential"`
}

// addPassword adds a generated secret, returned once in secretText. The credential is valid for
// two years unless endDateTime says otherwise (Graph's default).
func (a *api) addPassword(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, ActionSPsWrite, r.PathValue("id"))
	if c == nil {
		return
	}
	var in addPasswordIn
	if r.ContentLength != 0 {
		if aerr := decodeBody(w, r, &in); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	now := a.now().UTC()
	start, end, name := now, now.AddDate(2, 0, 0), ""
	if pc := in.PasswordCredential; pc != nil {
		if pc.StartDateTime != nil {
			start = pc.StartDateTime.UTC()
		}
		if pc.EndDateTime != nil {
			end = pc.EndDateTime.UTC()
		}
		if pc.DisplayName != nil {
			if aerr := checkDisplayName(pc.DisplayName, false); aerr != nil {
				writeError(w, aerr)
				return
			}
			name = *pc.DisplayName
		}
	}
	if !end.After(start) || !end.After(now) || end.After(now.AddDate(maxYears, 0, 0)) {
		writeError(w, errBadRequest("Property endDateTime must be after startDateTime and now, and within %d years.", maxYears))
		return
	}
	secret := NewSecret()
	cred, err := newCredential(secret, name, start, end)
	if err != nil {
		writeError(w, &apiError{http.StatusInternalServerError, "InternalServerError", "Could not store the secret; try again."})
		return
	}
	a.write(c, ActionSPsWrite, r.PathValue("id"), KindServicePrincipal, http.StatusOK, func(tx store.Tx, p *store.Principal, d *doc) (any, error) {
		if len(d.Credentials) >= MaxCredentials {
			return nil, errBadRequest("The service principal has %d password credentials, the most it may have: remove one first.", MaxCredentials)
		}
		if len(d.Credentials) == 0 {
			d.SecretHash = "" // the one secret of an old principal gives way to credentials
		}
		d.Credentials = append(d.Credentials, cred)
		p.Body = encode(*d)
		if err := tx.PutPrincipal(c.r.Context(), *p); err != nil {
			return nil, err
		}
		return passwordCredentialOut{KeyID: cred.KeyID, DisplayName: cred.DisplayName, Hint: cred.Hint,
			StartDateTime: cred.Start, EndDateTime: cred.End, SecretText: &secret}, nil
	})
}

func (a *api) removePassword(w http.ResponseWriter, r *http.Request) {
	c := a.begin(w, r, ActionSPsWrite, r.PathValue("id"))
	if c == nil {
		return
	}
	var in struct {
		KeyID *string `json:"keyId"`
	}
	if aerr := decodeBody(w, r, &in); aerr != nil {
		writeError(w, aerr)
		return
	}
	if in.KeyID == nil || *in.KeyID == "" {
		writeError(w, errBadRequest("Property keyId is required."))
		return
	}
	a.write(c, ActionSPsWrite, r.PathValue("id"), KindServicePrincipal, http.StatusNoContent, func(tx store.Tx, p *store.Principal, d *doc) (any, error) {
		for i, cr := range d.Credentials {
			if strings.EqualFold(cr.KeyID, *in.KeyID) {
				d.Credentials = append(d.Credentials[:i], d.Credentials[i+1:]...)
				p.Body = encode(*d)
				return nil, tx.PutPrincipal(c.r.Context(), *p)
			}
		}
		return nil, &apiError{http.StatusNotFound, "Request_ResourceNotFound", fmt.Sprintf("No password credential found with keyId '%s'.", *in.KeyID)}
	})
}
