package e2e

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/server"
	"github.com/pglink/pglink/internal/store"
)

// rbac are the armauthorization clients of one instance.
type rbac struct {
	defs    *armauthorization.RoleDefinitionsClient
	assigns *armauthorization.RoleAssignmentsClient
}

func newRBAC(t *testing.T, in *instance) rbac {
	t.Helper()
	f, err := armauthorization.NewClientFactory(in.boot.SubscriptionID, in.credential(), in.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	return rbac{defs: f.NewRoleDefinitionsClient(), assigns: f.NewRoleAssignmentsClient()}
}

// objectID returns the object id of the principal with login.
func (in *instance) objectID(t *testing.T, login string) string {
	t.Helper()
	var p store.Principal
	err := in.srv.Store().View(context.Background(), func(tx store.Tx) error {
		var err error
		p, err = tx.Principal(context.Background(), login)
		return err
	})
	if err != nil {
		t.Fatalf("principal %s: %v", login, err)
	}
	return p.ObjectID
}

// addUser creates a user with the pglink CLI (`pglink ad user create`) and returns its object id.
func (in *instance) addUser(t *testing.T, login string) string {
	t.Helper()
	c := in.adminCLI(t)
	return strings.TrimSpace(c.ok(nil, "ad", "user", "create", "--display-name", login, "--password", "Pg1-"+resource.NewGUID()[:12],
		"--user-principal-name", login, "--query", "id", "-o", "tsv"))
}

// wantError checks that err is an ARM error with status and code.
func wantError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Errorf("%s: error %v; want %d %s", what, err, status, code)
		return
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Errorf("%s: %d %s; want %d %s", what, re.StatusCode, re.ErrorCode, status, code)
	}
}

func (r rbac) definitions(t *testing.T, scope, filter string) []*armauthorization.RoleDefinition {
	t.Helper()
	var all []*armauthorization.RoleDefinition
	opts := &armauthorization.RoleDefinitionsClientListOptions{}
	if filter != "" {
		opts.Filter = to.Ptr(filter)
	}
	pager := r.defs.NewListPager(scope, opts)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list role definitions at %s (%q): %v", scope, filter, err)
		}
		all = append(all, page.Value...)
	}
	return all
}

func (r rbac) assignments(t *testing.T, scope, filter string) []string {
	t.Helper()
	var ids []string
	opts := &armauthorization.RoleAssignmentsClientListForScopeOptions{}
	if filter != "" {
		// armauthorization sends a role assignment $filter as given (it skips URL encoding):
		// the caller encodes it, as with Azure.
		opts.Filter = to.Ptr(url.QueryEscape(filter))
	}
	pager := r.assigns.NewListForScopePager(scope, opts)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list role assignments at %s (%q): %v", scope, filter, err)
		}
		for _, a := range page.Value {
			ids = append(ids, *a.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func roleDefID(sub, guid string) string {
	return "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

func TestRoleDefinitions(t *testing.T) {
	in := start(t, func(c *server.Config) { c.PageSize = 3 }) // lists span pages
	r := newRBAC(t, in)
	sub := "/subscriptions/" + in.boot.SubscriptionID

	var names []string
	for _, d := range r.definitions(t, sub, "") {
		names = append(names, *d.Properties.RoleName)
	}
	for _, want := range []string{"Owner", "Contributor", "Reader", "Network Contributor", "Private DNS Zone Contributor",
		"PostgreSQL Flexible Server Administrator", "PostgreSQL Private Link Approver"} {
		if !slices.Contains(names, want) {
			t.Errorf("role definitions at %s = %v; want %q among them", sub, names, want)
		}
	}

	// Found by name, as az role assignment create --role NAME does.
	got := r.definitions(t, sub, "roleName eq 'Network Contributor'")
	if len(got) != 1 || *got[0].Name != authz.NetworkContributorID || *got[0].ID != roleDefID(in.boot.SubscriptionID, authz.NetworkContributorID) ||
		*got[0].Properties.RoleType != "BuiltInRole" || !slices.ContainsFunc(got[0].Properties.Permissions[0].Actions, func(a *string) bool { return *a == "Microsoft.Network/*" }) {
		t.Errorf("roleName eq 'Network Contributor' = %+v; want the one built-in", got)
	}

	// One by GUID, at the root and at the subscription.
	owner, err := r.defs.Get(ctxT(t), "/", authz.OwnerID, nil)
	if err != nil || *owner.Properties.RoleName != "Owner" || *owner.ID != "/providers/Microsoft.Authorization/roleDefinitions/"+authz.OwnerID {
		t.Errorf("Get(/, Owner) = %+v, %v; want Owner at the root", owner.RoleDefinition, err)
	}
	contrib, err := r.defs.Get(ctxT(t), sub, authz.ContributorID, nil)
	if err != nil || !slices.ContainsFunc(contrib.Properties.Permissions[0].NotActions, func(a *string) bool { return *a == "Microsoft.Authorization/*/Write" }) {
		t.Errorf("Get(Contributor) = %+v, %v; want notActions with Microsoft.Authorization/*/Write", contrib.RoleDefinition, err)
	}
	_, err = r.defs.Get(ctxT(t), sub, resource.NewGUID(), nil)
	wantError(t, "get unknown role definition", err, http.StatusNotFound, "RoleDefinitionDoesNotExist")

	// Built-ins are read-only.
	_, err = r.defs.Delete(ctxT(t), sub, authz.ReaderID, nil)
	wantError(t, "delete Reader", err, http.StatusForbidden, "BuiltInRoleDefinitionReadOnly")
	_, err = r.defs.CreateOrUpdate(ctxT(t), sub, authz.ReaderID, customRole("Reader 2", sub), nil)
	wantError(t, "update Reader", err, http.StatusForbidden, "BuiltInRoleDefinitionReadOnly")

	// A custom role.
	guid := resource.NewGUID()
	created, err := r.defs.CreateOrUpdate(ctxT(t), sub, guid, customRole("Subnet Joiner", sub), nil)
	if err != nil {
		t.Fatalf("create custom role: %v", err)
	}
	if *created.Properties.RoleType != "CustomRole" || *created.Name != guid || *created.ID != roleDefID(in.boot.SubscriptionID, guid) {
		t.Errorf("created custom role = %+v; want a CustomRole named %s", created.RoleDefinition, guid)
	}
	got = r.definitions(t, sub, "type eq 'CustomRole'")
	if len(got) != 1 || *got[0].Properties.RoleName != "Subnet Joiner" {
		t.Errorf("type eq 'CustomRole' = %v; want the custom role", got)
	}
	if got := r.definitions(t, "/", "roleName eq 'Subnet Joiner'"); len(got) != 0 {
		t.Errorf("custom role listed outside its assignable scopes: %v", got)
	}
	_, err = r.defs.CreateOrUpdate(ctxT(t), sub, resource.NewGUID(), customRole("subnet joiner", sub), nil)
	wantError(t, "second role with the same name", err, http.StatusConflict, "RoleDefinitionWithSameNameExists")
	_, err = r.defs.CreateOrUpdate(ctxT(t), sub, resource.NewGUID(), customRole("Owner", sub), nil)
	wantError(t, "custom role named like a built-in", err, http.StatusConflict, "RoleDefinitionWithSameNameExists")
	upd := customRole("Subnet Joiner", sub)
	upd.Properties.Description = to.Ptr("joins subnets, reads networks")
	if u, err := r.defs.CreateOrUpdate(ctxT(t), sub, guid, upd, nil); err != nil || *u.Properties.Description != "joins subnets, reads networks" {
		t.Errorf("update custom role = %+v, %v; want the new description", u.RoleDefinition, err)
	}

	// Assigned, it cannot be deleted; unassigned, it can.
	user := in.addUser(t, "joiner@pglink.local")
	name := resource.NewGUID()
	if _, err := r.assigns.Create(ctxT(t), sub, name, assignment(roleDefID(in.boot.SubscriptionID, guid), user), nil); err != nil {
		t.Fatalf("assign custom role: %v", err)
	}
	_, err = r.defs.Delete(ctxT(t), sub, guid, nil)
	wantError(t, "delete assigned custom role", err, http.StatusConflict, "RoleDefinitionHasAssignments")
	if _, err := r.assigns.Delete(ctxT(t), sub, name, nil); err != nil {
		t.Fatalf("delete assignment: %v", err)
	}
	if _, err := r.defs.Delete(ctxT(t), sub, guid, nil); err != nil {
		t.Fatalf("delete custom role: %v", err)
	}
	_, err = r.defs.Get(ctxT(t), sub, guid, nil)
	wantError(t, "get deleted custom role", err, http.StatusNotFound, "RoleDefinitionDoesNotExist")
}

func customRole(name, scope string) armauthorization.RoleDefinition {
	return armauthorization.RoleDefinition{Properties: &armauthorization.RoleDefinitionProperties{
		RoleName:    to.Ptr(name),
		Description: to.Ptr("joins subnets"),
		Permissions: []*armauthorization.Permission{{
			Actions:    []*string{to.Ptr("Microsoft.Network/*/read"), to.Ptr("Microsoft.Network/virtualNetworks/subnets/join/action")},
			NotActions: []*string{to.Ptr("Microsoft.Network/privateDnsZones/*")},
		}},
		AssignableScopes: []*string{to.Ptr(scope)},
	}}
}

func assignment(roleDefinitionID, principalID string) armauthorization.RoleAssignmentCreateParameters {
	return armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
		RoleDefinitionID: to.Ptr(roleDefinitionID),
		PrincipalID:      to.Ptr(principalID),
	}}
}

func TestRoleAssignments(t *testing.T) {
	in := start(t, nil)
	r := newRBAC(t, in)
	c := newClients(t, in)
	c.group(t, "net")
	c.group(t, "db")
	srv := c.server(t, "db", "pg1")
	subID := in.boot.SubscriptionID
	sub := "/subscriptions/" + subID
	netRG := sub + "/resourceGroups/net"
	dbRG := sub + "/resourceGroups/db"
	user := in.addUser(t, "netadmin@pglink.local")

	// One assignment at each scope.
	type want struct{ scope, role, name string }
	made := []want{
		{sub, authz.ReaderID, resource.NewGUID()},
		{netRG, authz.NetworkContributorID, resource.NewGUID()},
		{*srv.ID, authz.PrivateLinkApproverID, resource.NewGUID()},
	}
	ids := map[string]string{}
	for _, m := range made {
		got, err := r.assigns.Create(ctxT(t), m.scope, m.name, assignment(roleDefID(subID, m.role), user), nil)
		if err != nil {
			t.Fatalf("assign %s at %s: %v", m.role, m.scope, err)
		}
		p := got.Properties
		wantID := m.scope + "/providers/Microsoft.Authorization/roleAssignments/" + m.name
		if *got.ID != wantID || *p.Scope != m.scope || *p.PrincipalID != user || string(*p.PrincipalType) != "User" ||
			!strings.EqualFold(*p.RoleDefinitionID, roleDefID(subID, m.role)) {
			t.Errorf("Create(%s) = %s %s %s %s %s; want %s at %s for %s", m.scope, *got.ID, *p.Scope, *p.PrincipalID, *p.PrincipalType, *p.RoleDefinitionID, m.role, wantID, user)
		}
		ids[m.scope] = wantID
		back, err := r.assigns.Get(ctxT(t), m.scope, m.name, nil)
		if err != nil || *back.ID != wantID {
			t.Errorf("Get(%s, %s) = %v, %v; want %s", m.scope, m.name, back.ID, err, wantID)
		}
		byID, err := r.assigns.GetByID(ctxT(t), wantID, nil)
		if err != nil || *byID.Name != m.name {
			t.Errorf("GetByID(%s) = %v, %v; want %s", wantID, byID.Name, err, m.name)
		}
	}

	// Re-creating the same assignment changes nothing; the same role for the same principal at
	// the same scope under another name is a conflict, as is changing an assignment.
	if _, err := r.assigns.Create(ctxT(t), netRG, made[1].name, assignment(roleDefID(subID, authz.NetworkContributorID), user), nil); err != nil {
		t.Errorf("repeat create: %v", err)
	}
	_, err := r.assigns.Create(ctxT(t), netRG, resource.NewGUID(), assignment(roleDefID(subID, authz.NetworkContributorID), user), nil)
	wantError(t, "duplicate assignment", err, http.StatusConflict, "RoleAssignmentExists")
	_, err = r.assigns.Create(ctxT(t), netRG, made[1].name, assignment(roleDefID(subID, authz.ReaderID), user), nil)
	wantError(t, "changed assignment", err, http.StatusConflict, "RoleAssignmentUpdateNotPermitted")
	_, err = r.assigns.Create(ctxT(t), netRG, resource.NewGUID(), assignment(roleDefID(subID, authz.OwnerID), resource.NewGUID()), nil)
	wantError(t, "unknown principal", err, http.StatusBadRequest, "PrincipalNotFound")
	_, err = r.assigns.Create(ctxT(t), netRG, resource.NewGUID(), assignment(roleDefID(subID, resource.NewGUID()), user), nil)
	wantError(t, "unknown role", err, http.StatusBadRequest, "RoleDefinitionDoesNotExist")
	_, err = r.assigns.Create(ctxT(t), netRG, "not-a-guid", assignment(roleDefID(subID, authz.ReaderID), user), nil)
	wantError(t, "name not a GUID", err, http.StatusBadRequest, "InvalidRoleAssignmentId")
	bad := assignment(roleDefID(subID, authz.ReaderID), user)
	bad.Properties.PrincipalType = to.Ptr(armauthorization.PrincipalTypeServicePrincipal)
	_, err = r.assigns.Create(ctxT(t), dbRG, resource.NewGUID(), bad, nil)
	wantError(t, "wrong principal type", err, http.StatusBadRequest, "UnmatchedPrincipalType")
	_, err = r.assigns.Create(ctxT(t), sub+"/resourceGroups/nothing", resource.NewGUID(), assignment(roleDefID(subID, authz.ReaderID), user), nil)
	wantError(t, "assignment in a missing group", err, http.StatusNotFound, "ResourceGroupNotFound")

	// An assignment at the root scope, made through the API, holds everywhere below it.
	spOID, spApp, spSecret := in.newSP(t, "root-reader")
	spTok := in.tokenFor(t, spApp, spSecret)
	dbGroup := "/subscriptions/" + subID + "/resourceGroups/db?api-version=2021-04-01"
	if r := in.do(t, "GET", dbGroup, spTok, nil, nil); r.status != http.StatusForbidden {
		t.Errorf("GET a group before any assignment: %d; want 403", r.status)
	}
	rootName := resource.NewGUID()
	rootDef := "/providers/Microsoft.Authorization/roleDefinitions/" + authz.ReaderID
	if _, err := r.assigns.Create(ctxT(t), "/", rootName, assignment(rootDef, spOID), nil); err != nil {
		t.Fatalf("assign Reader at the root: %v", err)
	}
	if got, err := r.assigns.Get(ctxT(t), "/", rootName, nil); err != nil || *got.Properties.Scope != "/" {
		t.Errorf("Get the root assignment = %v, %v; want scope /", got.Properties, err)
	}
	if r := in.do(t, "GET", dbGroup, spTok, nil, nil); r.status != http.StatusOK {
		t.Errorf("GET a group with Reader at the root: %d %s; want 200", r.status, r.raw)
	}
	if _, err := r.assigns.Delete(ctxT(t), "/", rootName, nil); err != nil {
		t.Errorf("delete the root assignment: %v", err)
	}
	if r := in.do(t, "GET", dbGroup, spTok, nil, nil); r.status != http.StatusForbidden {
		t.Errorf("GET a group after the root assignment was deleted: %d; want 403", r.status)
	}

	// Lists: at, above and below a scope; atScope() only at and above; by principal.
	admin := in.objectID(t, in.boot.ClientID)
	adminUser := in.objectID(t, in.boot.Username)
	root := r.assignments(t, "/", "atScope() and assignedTo('"+admin+"')")
	if len(root) != 1 || !strings.HasPrefix(root[0], "/providers/Microsoft.Authorization/roleAssignments/") {
		t.Errorf("admin's assignments at the root = %v; want its Owner assignment", root)
	}
	mine := r.assignments(t, netRG, "assignedTo('"+user+"')")
	if want := []string{ids[sub], ids[netRG]}; !slices.Equal(mine, sortedCopy(want)) {
		t.Errorf("assignedTo at %s = %v; want %v", netRG, mine, want)
	}
	all := r.assignments(t, dbRG, "principalId eq '"+user+"'")
	if want := []string{ids[sub], ids[*srv.ID]}; !slices.Equal(all, sortedCopy(want)) {
		t.Errorf("principalId eq at %s = %v; want %v", dbRG, all, want)
	}
	atScope := r.assignments(t, dbRG, "atScope()")
	for _, id := range atScope {
		if id == ids[*srv.ID] || id == ids[netRG] {
			t.Errorf("atScope() at %s lists %s", dbRG, id)
		}
	}
	if len(atScope) != 3 { // Reader on the subscription, the administrator's two Owners
		t.Errorf("atScope() at %s = %v; want 3", dbRG, atScope)
	}
	var onServer []string
	pager := r.assigns.NewListForResourcePager("db", "Microsoft.DBforPostgreSQL", "flexibleServers", "pg1",
		&armauthorization.RoleAssignmentsClientListForResourceOptions{Filter: to.Ptr(url.QueryEscape("principalId eq '" + user + "'"))})
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list for resource: %v", err)
		}
		for _, a := range page.Value {
			onServer = append(onServer, *a.ID)
		}
	}
	if want := []string{ids[sub], ids[*srv.ID]}; !slices.Equal(sortedCopy(onServer), sortedCopy(want)) {
		t.Errorf("ListForResource(pg1) = %v; want %v", onServer, want)
	}
	var inSub int
	sp := r.assigns.NewListForSubscriptionPager(nil)
	for sp.More() {
		page, err := sp.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list for subscription: %v", err)
		}
		inSub += len(page.Value)
	}
	if inSub != 5 { // three of the user's, the administrator's two Owners
		t.Errorf("ListForSubscription = %d assignments; want 5", inSub)
	}
	if _, err := r.assigns.Get(ctxT(t), dbRG, made[1].name, nil); err == nil {
		t.Errorf("Get(%s) found an assignment made at %s", dbRG, netRG)
	}
	_, err = r.assigns.Create(ctxT(t), dbRG, made[1].name, assignment(roleDefID(subID, authz.NetworkContributorID), user), nil)
	wantError(t, "same name at another scope", err, http.StatusConflict, "RoleAssignmentUpdateNotPermitted")
	if adminUser == admin {
		t.Errorf("administrator user and service principal share object id %s", admin)
	}

	// Delete: the body of what was deleted, then nothing.
	for _, m := range made {
		if _, err := r.assigns.Delete(ctxT(t), m.scope, m.name, nil); err != nil {
			t.Errorf("delete %s: %v", m.name, err)
		}
		_, err := r.assigns.Get(ctxT(t), m.scope, m.name, nil)
		wantError(t, "get deleted assignment", err, http.StatusNotFound, "RoleAssignmentNotFound")
		if _, err := r.assigns.Delete(ctxT(t), m.scope, m.name, nil); err != nil {
			t.Errorf("delete %s again: %v", m.name, err)
		}
	}
	if got := r.assignments(t, sub, "principalId eq '"+user+"'"); len(got) != 0 {
		t.Errorf("assignments left after delete: %v", got)
	}

	// Writes land in the activity log.
	events := in.activityLog(t, in.token(), "eventTimestamp ge '2000-01-01T00:00:00Z' and resourceProvider eq 'Microsoft.Authorization'")
	if len(events) == 0 {
		t.Errorf("no Microsoft.Authorization events in the activity log")
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func TestBootstrapAdministratorIsOwner(t *testing.T) {
	in := start(t, nil)
	r := newRBAC(t, in)
	owners := func() map[string]int {
		got := map[string]int{}
		pager := r.assigns.NewListForScopePager("/", &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr("atScope()")})
		for pager.More() {
			page, err := pager.NextPage(ctxT(t))
			if err != nil {
				t.Fatalf("list at the root: %v", err)
			}
			for _, a := range page.Value {
				if *a.Properties.Scope == "/" && strings.HasSuffix(*a.Properties.RoleDefinitionID, "/"+authz.OwnerID) {
					got[*a.Properties.PrincipalID+" "+string(*a.Properties.PrincipalType)]++
				}
			}
		}
		return got
	}
	want := map[string]int{
		in.objectID(t, in.boot.ClientID) + " ServicePrincipal": 1,
		in.objectID(t, in.boot.Username) + " User":             1,
	}
	check := func(when string) {
		t.Helper()
		if got := owners(); !maps.Equal(got, want) {
			t.Errorf("Owners at the root %s = %v; want %v", when, got, want)
		}
	}
	check("at first start")
	in.restart()
	check("after a restart")

	// A data dir from before role assignments gets them at its next start.
	st := in.srv.Store()
	err := st.Update(context.Background(), func(tx store.Tx) error {
		rs, err := tx.List(context.Background(), store.ListOptions{Type: "Microsoft.Authorization/roleAssignments"})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := tx.Delete(context.Background(), r.Key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without its assignments the administrator may do nothing, not even list assignments.
	_, err = r.assigns.NewListForScopePager("/", nil).NextPage(ctxT(t))
	wantError(t, "list without assignments", err, http.StatusForbidden, "AuthorizationFailed")
	in.restart()
	r = newRBAC(t, in)
	check("after a start on a data dir without them")
}

// TestAzRoleAssignments drives role definitions and assignments with az 2.45, as an
// administrator scripts the seed's separation of duties.
func TestAzRoleAssignments(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	c.group(t, "net")
	az := newAzCLI(t, in)
	user := in.addUser(t, "netadmin@pglink.local")
	rg := "/subscriptions/" + in.boot.SubscriptionID + "/resourceGroups/net"

	var made struct {
		ID               string `json:"id"`
		PrincipalID      string `json:"principalId"`
		RoleDefinitionID string `json:"roleDefinitionId"`
		Scope            string `json:"scope"`
	}
	decode(t, az.az(t, "role", "assignment", "create", "--assignee-object-id", user, "--assignee-principal-type", "User",
		"--role", "Network Contributor", "--scope", rg), &made)
	if made.PrincipalID != user || made.Scope != rg || !strings.HasSuffix(made.RoleDefinitionID, "/"+authz.NetworkContributorID) {
		t.Errorf("az role assignment create = %+v; want Network Contributor for %s at %s", made, user, rg)
	}
	// az 2.45 lists role assignments, and explains a duplicate, only with Microsoft Graph (for
	// principal names), which pglink does not serve: the SDK checks.
	r := newRBAC(t, in)
	if got := r.assignments(t, rg, "atScope()"); !slices.Contains(got, made.ID) {
		t.Errorf("role assignments at %s = %v; want %s among them", rg, got, made.ID)
	}
	az.az(t, "role", "assignment", "delete", "--ids", made.ID)
	if got := r.assignments(t, rg, "principalId eq '"+user+"'"); len(got) != 0 {
		t.Errorf("role assignments of %s after az role assignment delete = %v; want none", user, got)
	}
}
