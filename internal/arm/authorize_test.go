package arm_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// fakePerms allows exactly the listed "action scope" pairs (compared ignoring case) and
// reaches the listed scopes and everything above and below them.
type fakePerms struct {
	allow   []string
	reaches []string
}

func (p fakePerms) Allowed(action, scope string) bool {
	for _, a := range p.allow {
		if strings.EqualFold(a, action+" "+scope) {
			return true
		}
	}
	return false
}

func (p fakePerms) Reaches(scope string) bool {
	s := strings.ToLower(scope)
	for _, r := range p.reaches {
		r = strings.ToLower(r)
		if strings.HasPrefix(s, r) || strings.HasPrefix(r, s) {
			return true
		}
	}
	return false
}

// fakeAuthorizer hands out perms for principal oid-1 and counts the loads.
type fakeAuthorizer struct {
	perms fakePerms
	loads int
}

func (a *fakeAuthorizer) Permissions(ctx context.Context, principalID string) (arm.Permissions, error) {
	a.loads++
	if principalID != "oid-1" {
		return fakePerms{}, nil
	}
	return a.perms, nil
}

const partType = widgetType + "/parts"

// authzFixture is a front door with an Authorizer over a store holding widgets w1 and w2 in
// rg; handler serves both widgets and their parts.
func authzFixture(t *testing.T, perms fakePerms, handler arm.Handler) (*fixture, *fakeAuthorizer) {
	t.Helper()
	f := newFixture(t, nil)
	auth := &fakeAuthorizer{perms: perms}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	f.front = arm.New(arm.Config{Endpoint: "https://pglink.test", TenantID: "t1", Authorizer: auth}, f.st, fakeAuth{}, pendingWaiter{f.st}, log)
	f.front.Register(
		arm.Type{Name: widgetType, APIVersions: []string{apiVersion}, Handler: handler},
		arm.Type{Name: partType, APIVersions: []string{apiVersion}, Handler: handler},
	)
	if err := f.st.Update(t.Context(), func(tx store.Tx) error {
		for _, p := range []string{widgetPath, rgPath + "/providers/" + widgetType + "/w2"} {
			if err := putWidget(t.Context(), tx, resource.MustParse(p)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return f, auth
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) arm.ErrorDetail {
	t.Helper()
	var b arm.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("decode error body %q: %v", w.Body.String(), err)
	}
	return b.Error
}

// TestAuthorizeRequests: each request is decided on its action and the scope it addresses
// before the handler runs; a denial is 403 AuthorizationFailed with Azure's message.
func TestAuthorizeRequests(t *testing.T) {
	w1 := widgetPath
	perms := fakePerms{allow: []string{
		widgetType + "/read " + w1,
		widgetType + "/start/action " + w1,
		partType + "/write " + w1 + "/parts/p1",
	}}
	tests := []struct {
		method, path string
		wantHTTP     int
		wantAction   string // the action the handler saw, or the denied action
	}{
		{"GET", w1, 200, widgetType + "/read"},
		{"HEAD", w1, 200, widgetType + "/read"},
		{"POST", w1 + "/start", 200, widgetType + "/start/action"},
		{"PUT", w1 + "/parts/p1", 200, partType + "/write"},
		{"PUT", w1, 403, widgetType + "/write"},
		{"PATCH", w1, 403, widgetType + "/write"},
		{"DELETE", w1, 403, widgetType + "/delete"},
		{"POST", w1 + "/stop", 403, widgetType + "/stop/action"},
		{"GET", w1 + "/parts", 403, partType + "/read"}, // a child list is not filtered
		{"DELETE", w1 + "/parts/p1", 403, partType + "/delete"},
	}
	for _, tc := range tests {
		called := ""
		f, _ := authzFixture(t, perms, func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
			called = req.Action
			return &arm.Response{}, nil
		})
		w := f.serve(t.Context(), tc.method, tc.path)
		if w.Code != tc.wantHTTP {
			t.Errorf("%s %s = %d %s; want %d", tc.method, tc.path, w.Code, w.Body, tc.wantHTTP)
			continue
		}
		if tc.wantHTTP == 200 {
			if called != tc.wantAction {
				t.Errorf("%s %s: handler saw action %q; want %q", tc.method, tc.path, called, tc.wantAction)
			}
			continue
		}
		if called != "" {
			t.Errorf("%s %s: denied, but the handler ran", tc.method, tc.path)
		}
		scope := tc.path
		if strings.HasSuffix(scope, "/stop") || strings.HasSuffix(scope, "/parts") {
			scope = scope[:strings.LastIndex(scope, "/")]
		}
		e := errorOf(t, w)
		want := "The client 'alice@example.com' with object id 'oid-1' does not have authorization to perform action '" + tc.wantAction +
			"' over scope '" + scope + "' or the scope is invalid. If access was recently granted, please refresh your credentials."
		if e.Code != "AuthorizationFailed" || e.Message != want {
			t.Errorf("%s %s = %s %q; want AuthorizationFailed %q", tc.method, tc.path, e.Code, e.Message, want)
		}
	}
}

// TestAuthorizeDeniedWriteIsLogged: a denied write gets its Failed event with the caller.
func TestAuthorizeDeniedWriteIsLogged(t *testing.T) {
	f, _ := authzFixture(t, fakePerms{}, func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
		t.Error("handler ran for a denied request")
		return &arm.Response{}, nil
	})
	if w := f.serve(t.Context(), "PUT", widgetPath); w.Code != 403 {
		t.Fatalf("PUT = %d; want 403", w.Code)
	}
	f.serve(t.Context(), "GET", widgetPath) // denied reads are not logged
	evs := f.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d events; want 1", len(evs))
	}
	e := evs[0]
	if e.Status.Value != "Failed" || e.Caller != "alice@example.com" || e.OperationName.Value != widgetType+"/write" ||
		!strings.Contains(e.Properties["statusMessage"], "AuthorizationFailed") {
		t.Errorf("event = %s %s %s %v; want Failed by alice@example.com for %s/write with AuthorizationFailed",
			e.Status.Value, e.Caller, e.OperationName.Value, e.Properties, widgetType)
	}
}

// TestAuthorizeListFilter: a list the caller may not read at its scope, but which it reaches,
// shows the items it may read; one whose handler does not filter is refused; a caller who
// reaches nothing there is refused.
func TestAuthorizeListFilter(t *testing.T) {
	list := rgPath + "/providers/" + widgetType
	tests := []struct {
		name     string
		perms    fakePerms
		filters  bool // the handler lists through PageTx
		wantHTTP int
		want     []string
	}{
		{"reads all at the group", fakePerms{allow: []string{widgetType + "/read " + rgPath}}, true, 200, []string{"w1", "w2"}},
		{"reads one widget", fakePerms{allow: []string{widgetType + "/read " + widgetPath}, reaches: []string{widgetPath}}, true, 200, []string{"w1"}},
		{"reaches, reads none", fakePerms{reaches: []string{rgPath}}, true, 200, nil},
		{"handler does not filter", fakePerms{allow: []string{widgetType + "/read " + widgetPath}, reaches: []string{widgetPath}}, false, 403, nil},
		{"reaches nothing", fakePerms{reaches: []string{"/subscriptions/s1/resourceGroups/other"}}, true, 403, nil},
	}
	for _, tc := range tests {
		var f *fixture
		f, _ = authzFixture(t, tc.perms, func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
			if !tc.filters {
				return &arm.Response{Body: arm.List{Value: []any{"w1", "w2"}}}, nil
			}
			return req.Page(ctx, f.st, store.ListOptions{Parent: strings.ToLower(rgPath), Type: widgetType},
				func(r store.Resource) (any, error) { return resource.MustParse(r.ID).Name(), nil })
		})
		w := f.serve(t.Context(), "GET", list)
		if w.Code != tc.wantHTTP {
			t.Errorf("%s: GET list = %d %s; want %d", tc.name, w.Code, w.Body, tc.wantHTTP)
			continue
		}
		if w.Code != 200 {
			continue
		}
		var got struct{ Value []string }
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Value, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: list = %v; want %v", tc.name, got.Value, tc.want)
		}
	}
}

// TestAuthorizeFilteredEmptyList: a list the caller reaches but may not read at its scope is
// served empty, not refused, when there is nothing in it or nothing after its $skipToken.
func TestAuthorizeFilteredEmptyList(t *testing.T) {
	var f *fixture
	f, _ = authzFixture(t, fakePerms{reaches: []string{rgPath}}, func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
		typ := widgetType
		if req.Query.Get("parts") != "" {
			typ = partType // none stored
		}
		return req.Page(ctx, f.st, store.ListOptions{Parent: strings.ToLower(rgPath), Type: typ},
			func(r store.Resource) (any, error) { return r.ID, nil })
	})
	for _, path := range []string{
		rgPath + "/providers/" + widgetType + "?api-version=" + apiVersion + "&$skipToken=~",
		rgPath + "/providers/" + widgetType + "?api-version=" + apiVersion + "&parts=1",
	} {
		w := httptest.NewRecorder()
		f.front.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), "GET", path, nil))
		if w.Code != http.StatusOK {
			t.Errorf("GET %s (nothing listed) = %d %s; want 200 and an empty list", path, w.Code, w.Body)
			continue
		}
		var got struct{ Value []any }
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Value == nil || len(got.Value) != 0 {
			t.Errorf("GET %s (nothing listed) = %s, %v; want an empty value", path, w.Body, err)
		}
	}
}

// TestAuthorizeLinked: a provider's linked check names the request's own action and scope
// and each linked action denied, and loads the caller's permissions once per request.
func TestAuthorizeLinked(t *testing.T) {
	subnet := "/subscriptions/s1/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
	server := "/subscriptions/s1/resourceGroups/db/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg"
	approve := "Microsoft.DBforPostgreSQL/flexibleServers" + arm.ActionApproveSuffix
	perms := fakePerms{allow: []string{widgetType + "/write " + widgetPath, arm.ActionJoinSubnet + " " + subnet}}
	var linkErr, approveErr error
	f, auth := authzFixture(t, perms, func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
		linkErr = req.AuthorizeLinked(ctx, arm.Linked{Action: arm.ActionJoinSubnet, Scope: subnet}, arm.Linked{Action: approve, Scope: server})
		approveErr = req.Authorize(ctx, approve, server)
		if err := req.AuthorizeLinked(ctx, arm.Linked{Action: arm.ActionJoinSubnet, Scope: subnet}); err != nil {
			t.Errorf("AuthorizeLinked(join subnet) = %v; want nil", err)
		}
		return &arm.Response{}, nil
	})
	f.serve(t.Context(), "PUT", widgetPath)
	want := "The client 'alice@example.com' with object id 'oid-1' has permission to perform action '" + widgetType + "/write' on scope '" + widgetPath +
		"'; however, it does not have permission to perform action(s) '" + approve + "' on the linked scope(s) '" + server +
		"' (respectively) or the linked scope(s) are invalid."
	if e, ok := resource.AsError(linkErr); !ok || e.Code != "LinkedAuthorizationFailed" || e.Kind != resource.Forbidden || e.Message != want {
		t.Errorf("AuthorizeLinked = %v; want 403 LinkedAuthorizationFailed %q", linkErr, want)
	}
	if e, ok := resource.AsError(approveErr); !ok || e.Code != "AuthorizationFailed" || !strings.Contains(e.Message, "'"+approve+"' over scope '"+server+"'") {
		t.Errorf("Authorize(approve) = %v; want AuthorizationFailed naming %s over %s", approveErr, approve, server)
	}
	if auth.loads != 1 {
		t.Errorf("permissions loaded %d times in one request; want 1", auth.loads)
	}
}

// TestAction: the RBAC action of a verb on a type, as Azure spells it.
func TestAction(t *testing.T) {
	tests := []struct{ typ, verb, want string }{
		{resource.TypeResourceGroup, "read", "Microsoft.Resources/subscriptions/resourceGroups/read"},
		{resource.TypeSubscription, "read", "Microsoft.Resources/subscriptions/read"},
		{resource.TypeServer, "start/action", "Microsoft.DBforPostgreSQL/flexibleServers/start/action"},
		{resource.TypeConnection, "write", "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/write"},
	}
	for _, tc := range tests {
		if got := arm.Action(tc.typ, tc.verb); got != tc.want {
			t.Errorf("Action(%q, %q) = %q; want %q", tc.typ, tc.verb, got, tc.want)
		}
	}
}

// TestAuthorizeOperationStatus: an operation's polling endpoints answer the caller who
// started it and anyone who may read its resource, and refuse everyone else.
func TestAuthorizeOperationStatus(t *testing.T) {
	tests := []struct {
		name     string
		starter  string
		perms    fakePerms
		wantHTTP int
	}{
		{"started it", "oid-1", fakePerms{}, 200},
		{"reads the resource", "oid-2", fakePerms{allow: []string{widgetType + "/read " + widgetPath}}, 200},
		{"neither", "oid-2", fakePerms{reaches: []string{rgPath}}, 403},
	}
	for _, tc := range tests {
		f, _ := authzFixture(t, tc.perms, func(ctx context.Context, req *arm.Request) (*arm.Response, error) { return &arm.Response{}, nil })
		f.front.RegisterOperationStatus("Microsoft.Test", []string{apiVersion})
		var op store.Operation
		if err := f.st.Update(t.Context(), func(tx store.Tx) error {
			var err error
			op, err = operation.Begin(t.Context(), tx, "test.widget", resource.MustParse(widgetPath), "eastus", "PUT", "g",
				operation.Meta{CallerObjectID: tc.starter}, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"azureAsyncOperation", "operationResults"} {
			w := f.serve(t.Context(), "GET", "/subscriptions/s1/providers/Microsoft.Test/locations/eastus/"+kind+"/"+op.ID)
			got := w.Code
			if got == http.StatusAccepted {
				got = 200 // operationResults of an operation in progress
			}
			if got != tc.wantHTTP {
				t.Errorf("%s: GET %s = %d %s; want %d", tc.name, kind, w.Code, w.Body, tc.wantHTTP)
			}
		}
	}
}

// TestAuthorizeSubscriptions: a caller sees the subscriptions it holds any role assignment in
// (at, above or below them), and may read those, as in Azure.
func TestAuthorizeSubscriptions(t *testing.T) {
	tests := []struct {
		name     string
		perms    fakePerms
		wantList string
		wantGet  int
	}{
		{"assigned in a group", fakePerms{reaches: []string{rgPath}}, "/subscriptions/s1", 200},
		{"assigned at the root", fakePerms{reaches: []string{"/"}}, "/subscriptions/s1", 200},
		{"assigned elsewhere", fakePerms{reaches: []string{"/subscriptions/s2"}}, "", 403},
	}
	for _, tc := range tests {
		f, _ := authzFixture(t, tc.perms, func(ctx context.Context, req *arm.Request) (*arm.Response, error) { return &arm.Response{}, nil })
		var st store.Store = f.st
		f.front.Register(arm.Type{Name: resource.TypeSubscription, APIVersions: []string{apiVersion},
			Handler: func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				if req.Target.Collection {
					return req.Page(ctx, st, store.ListOptions{Parent: "/", Type: resource.TypeSubscription},
						func(r store.Resource) (any, error) { return r.ID, nil })
				}
				return &arm.Response{Body: map[string]string{"id": req.Target.ID.String()}}, nil
			}})
		w := f.serve(t.Context(), "GET", "/subscriptions")
		var got struct{ Value []string }
		if err := json.Unmarshal(w.Body.Bytes(), &got); w.Code != 200 || err != nil {
			t.Fatalf("%s: GET /subscriptions = %d %s", tc.name, w.Code, w.Body)
		}
		if strings.Join(got.Value, ",") != tc.wantList {
			t.Errorf("%s: GET /subscriptions = %v; want %q", tc.name, got.Value, tc.wantList)
		}
		if w := f.serve(t.Context(), "GET", "/subscriptions/s1"); w.Code != tc.wantGet {
			t.Errorf("%s: GET /subscriptions/s1 = %d %s; want %d", tc.name, w.Code, w.Body, tc.wantGet)
		}
	}
}

// TestAuthorizeLocationMetadata: a provider's location metadata is readable by anyone holding a
// role in the subscription, and only by them.
func TestAuthorizeLocationMetadata(t *testing.T) {
	ns, _, _ := strings.Cut(widgetType, "/")
	capType := ns + "/locations/capabilities"
	path := "/subscriptions/s1/providers/" + ns + "/locations/eastus/capabilities"
	tests := []struct {
		name  string
		perms fakePerms
		want  int
	}{
		{"assigned in a group", fakePerms{reaches: []string{rgPath}}, 200},
		{"assigned elsewhere", fakePerms{reaches: []string{"/subscriptions/s2"}}, 403},
		{"no assignment", fakePerms{}, 403},
	}
	for _, tc := range tests {
		f, _ := authzFixture(t, tc.perms, func(ctx context.Context, req *arm.Request) (*arm.Response, error) { return &arm.Response{}, nil })
		f.front.Register(arm.Type{Name: capType, APIVersions: []string{apiVersion},
			Handler: func(ctx context.Context, req *arm.Request) (*arm.Response, error) {
				return &arm.Response{Body: map[string]string{"ok": "yes"}}, nil
			}})
		if w := f.serve(t.Context(), "GET", path); w.Code != tc.want {
			t.Errorf("%s: GET %s = %d %s; want %d", tc.name, path, w.Code, w.Body, tc.want)
		}
		if w := f.serve(t.Context(), "POST", path); w.Code == 200 {
			t.Errorf("%s: POST %s = 200; want a refusal: only reads are open", tc.name, path)
		}
	}
}
