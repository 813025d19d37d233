// Package authorization is the Microsoft.Authorization provider: role definitions (the
// built-in ones of authz and custom ones stored here) and role assignments at the root,
// subscription, resource group and resource scopes. They are the data authz.Decide decides
// over; Policy loads them for it.
//
// Role assignments and custom role definitions are stored as extension resources keyed by
// their lower-cased ID ("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
// with Parent the scope's key), so deleting a scope deletes what was assigned at it.
package authorization

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Resource types served.
const (
	TypeRoleDefinition = "Microsoft.Authorization/roleDefinitions"
	TypeRoleAssignment = "Microsoft.Authorization/roleAssignments"
)

// APIVersions are the Microsoft.Authorization api-versions served: those armauthorization
// (v2: 2022-04-01) and az (2022-04-01 for assignments, 2022-05-01-preview and older for
// definitions) send.
var APIVersions = []string{
	"2015-07-01", "2018-01-01-preview", "2018-07-01", "2018-09-01-preview", "2020-04-01-preview",
	"2020-08-01-preview", "2020-10-01", "2020-10-01-preview", "2021-04-01-preview", "2022-01-01-preview",
	"2022-04-01", "2022-05-01-preview",
}

// Definition is a role definition as ARM serves it.
type Definition struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Type       string               `json:"type"`
	Properties DefinitionProperties `json:"properties"`
}

// DefinitionProperties are the properties of a Definition.
type DefinitionProperties struct {
	RoleName         string             `json:"roleName"`
	Type             string             `json:"type"` // "BuiltInRole" or "CustomRole"
	Description      string             `json:"description"`
	AssignableScopes []string           `json:"assignableScopes"`
	Permissions      []authz.Permission `json:"permissions"`
	CreatedOn        *time.Time         `json:"createdOn,omitempty"`
	UpdatedOn        *time.Time         `json:"updatedOn,omitempty"`
	CreatedBy        string             `json:"createdBy,omitempty"`
	UpdatedBy        string             `json:"updatedBy,omitempty"`
}

// Assignment is a role assignment as ARM serves it.
type Assignment struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Type       string               `json:"type"`
	Properties AssignmentProperties `json:"properties"`
}

// AssignmentProperties are the properties of an Assignment.
type AssignmentProperties struct {
	RoleDefinitionID string     `json:"roleDefinitionId"`
	PrincipalID      string     `json:"principalId"`
	PrincipalType    string     `json:"principalType,omitempty"`
	Scope            string     `json:"scope"`
	Description      string     `json:"description,omitempty"`
	Condition        string     `json:"condition,omitempty"`
	ConditionVersion string     `json:"conditionVersion,omitempty"`
	CreatedOn        *time.Time `json:"createdOn,omitempty"`
	UpdatedOn        *time.Time `json:"updatedOn,omitempty"`
	CreatedBy        string     `json:"createdBy,omitempty"`
	UpdatedBy        string     `json:"updatedBy,omitempty"`
}

// Provider serves Microsoft.Authorization.
type Provider struct {
	st  store.Store
	log *slog.Logger
	now func() time.Time
}

// New returns the provider over st (the audited store, so writes land in the activity log).
func New(st store.Store, log *slog.Logger) *Provider {
	return &Provider{st: st, log: log.With("component", "authorization"), now: time.Now}
}

// Types returns the resource types the provider serves.
func (p *Provider) Types() []arm.Type {
	return []arm.Type{
		{Name: TypeRoleDefinition, APIVersions: APIVersions, Handler: p.serveDefinition},
		{Name: TypeRoleAssignment, APIVersions: APIVersions, Handler: p.serveAssignment},
		{Name: TypePermissions, APIVersions: APIVersions, Handler: p.servePermissions, SelfService: true},
	}
}

// target returns the scope a request addresses and the name of the role definition or
// assignment in it ("" for a list).
func target(t arm.Target) (scope resource.ID, name string) {
	switch {
	case t.Extension:
		return t.ID, t.Name
	case t.Collection:
		return t.ID, ""
	}
	return t.ID.Parent(), t.ID.Name()
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return guidRE.MatchString(s) }

// definitionID returns the ID under which a role definition is served at scope: at its
// subscription when scope has one, otherwise at the root, as Azure does.
func definitionID(scope resource.ID, guid string) string {
	return arm.ExtensionID(resource.ID{Subscription: scope.Subscription}, TypeRoleDefinition, guid)
}

// guidOfDefinitionID returns the GUID a roleDefinitionId names ("…/providers/Microsoft.Authorization/roleDefinitions/{guid}").
func guidOfDefinitionID(id string) (string, bool) {
	const marker = "/providers/microsoft.authorization/roledefinitions/"
	i := strings.LastIndex(strings.ToLower(id), marker)
	if i < 0 {
		return "", false
	}
	g := id[i+len(marker):]
	return g, isGUID(g)
}

// scopeOf returns the scope of the extension resource id ("{scope}/providers/{ns}/{type}/{name}").
func scopeOf(id string) resource.ID {
	i := strings.LastIndex(strings.ToLower(id), "/providers/")
	if i <= 0 {
		return resource.ID{}
	}
	s, _ := resource.Parse(id[:i])
	return s
}

// put stores v as the extension resource of type typ named name at scope.
func put(ctx context.Context, tx store.Tx, scope resource.ID, typ, name string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", typ, name, err)
	}
	id := arm.ExtensionID(scope, typ, name)
	if _, err := tx.Put(ctx, store.Resource{Key: strings.ToLower(id), ID: id, Type: typ, Parent: scope.Key(), Body: body}, ""); err != nil {
		return fmt.Errorf("write %s: %w", id, err)
	}
	return nil
}

// stored is a role definition or assignment read from the store.
type stored[T any] struct {
	key string
	doc T
}

func listStored[T any](ctx context.Context, tx store.Tx, typ string) ([]stored[T], error) {
	rs, err := tx.List(ctx, store.ListOptions{Type: typ})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", typ, err)
	}
	out := make([]stored[T], 0, len(rs))
	for _, r := range rs {
		var v T
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", r.ID, err)
		}
		out = append(out, stored[T]{key: r.Key, doc: v})
	}
	return out, nil
}

// role turns a stored or built-in definition into what authz decides over.
func (d Definition) role() authz.Role {
	return authz.Role{ID: d.Name, Name: d.Properties.RoleName, Description: d.Properties.Description,
		BuiltIn: d.Properties.Type == "BuiltInRole", Permissions: d.Properties.Permissions, AssignableScopes: d.Properties.AssignableScopes}
}

// builtInDefinition renders a built-in role as served at scope.
func builtInDefinition(r authz.Role, scope resource.ID) Definition {
	return Definition{ID: definitionID(scope, r.ID), Name: r.ID, Type: TypeRoleDefinition, Properties: DefinitionProperties{
		RoleName: r.Name, Type: "BuiltInRole", Description: r.Description, AssignableScopes: r.AssignableScopes, Permissions: r.Permissions,
	}}
}

// assignment turns a stored assignment into what authz decides over.
func (a Assignment) assignment() authz.Assignment {
	g, _ := guidOfDefinitionID(a.Properties.RoleDefinitionID)
	return authz.Assignment{ID: a.ID, PrincipalID: a.Properties.PrincipalID, RoleID: g, Scope: a.Properties.Scope}
}

// Policy returns what authz.Decide needs to decide for principalID: the principal's role
// assignments (at every scope) and every role definition, built-in and custom.
func Policy(ctx context.Context, tx store.Tx, principalID string) ([]authz.Assignment, []authz.Role, error) {
	as, err := listStored[Assignment](ctx, tx, TypeRoleAssignment)
	if err != nil {
		return nil, nil, err
	}
	var out []authz.Assignment
	for _, a := range as {
		if strings.EqualFold(a.doc.Properties.PrincipalID, principalID) {
			out = append(out, a.doc.assignment())
		}
	}
	roles, err := allRoles(ctx, tx)
	return out, roles, err
}

// All returns every role assignment, of every principal, and every role definition: what
// authz.Decide needs for anyone, for a caller that caches it.
func All(ctx context.Context, tx store.Tx) ([]authz.Assignment, []authz.Role, error) {
	as, err := listStored[Assignment](ctx, tx, TypeRoleAssignment)
	if err != nil {
		return nil, nil, err
	}
	out := make([]authz.Assignment, 0, len(as))
	for _, a := range as {
		out = append(out, a.doc.assignment())
	}
	roles, err := allRoles(ctx, tx)
	return out, roles, err
}

// allRoles returns the built-in roles and the custom ones.
func allRoles(ctx context.Context, tx store.Tx) ([]authz.Role, error) {
	defs, err := listStored[Definition](ctx, tx, TypeRoleDefinition)
	if err != nil {
		return nil, err
	}
	roles := authz.BuiltIns()
	for _, d := range defs {
		roles = append(roles, d.doc.role())
	}
	return roles, nil
}

// findCustom returns the stored custom role definition with GUID guid, or nil.
func findCustom(ctx context.Context, tx store.Tx, guid string) (*stored[Definition], error) {
	defs, err := listStored[Definition](ctx, tx, TypeRoleDefinition)
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		if strings.EqualFold(d.doc.Name, guid) {
			return &d, nil
		}
	}
	return nil, nil
}

func definitionNotFound(guid string) *resource.Error {
	return resource.Errorf(resource.NotFound, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", guid)
}

func builtInRefused(name string) error {
	return resource.Errorf(resource.Forbidden, "BuiltInRoleDefinitionReadOnly",
		"The role definition '%s' is a built-in role, which cannot be changed or deleted. Create a custom role instead.", name)
}

func (p *Provider) serveDefinition(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	scope, guid := target(req.Target)
	if req.Target.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return p.listDefinitions(ctx, req, scope)
	}
	switch req.Method {
	case http.MethodGet:
		if b, ok := authz.BuiltIn(guid); ok {
			return &arm.Response{Body: builtInDefinition(b, scope)}, nil
		}
		var d *stored[Definition]
		err := p.st.View(ctx, func(tx store.Tx) error {
			var err error
			d, err = findCustom(ctx, tx, guid)
			return err
		})
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, definitionNotFound(guid)
		}
		d.doc.ID = definitionID(scope, d.doc.Name)
		return &arm.Response{Body: d.doc}, nil
	case http.MethodPut:
		return p.putDefinition(ctx, req, scope, guid)
	case http.MethodDelete:
		return p.deleteDefinition(ctx, req, scope, guid)
	}
	return nil, arm.MethodNotAllowed(req)
}

func (p *Provider) listDefinitions(ctx context.Context, req *arm.Request, scope resource.ID) (*arm.Response, error) {
	f, err := parseFilter(req.Query.Get("$filter"))
	if err != nil {
		return nil, err
	}
	var defs []stored[Definition]
	if err := p.st.View(ctx, func(tx store.Tx) error {
		defs, err = listStored[Definition](ctx, tx, TypeRoleDefinition)
		return err
	}); err != nil {
		return nil, err
	}
	var all []Definition
	for _, b := range authz.BuiltIns() {
		all = append(all, builtInDefinition(b, scope))
	}
	for _, d := range defs {
		d.doc.ID = definitionID(scope, d.doc.Name)
		all = append(all, d.doc)
	}
	visible := req.Filter()
	var out []Definition
	for _, d := range all {
		if !visible(TypeRoleDefinition, d.ID) ||
			f.RoleName != "" && !strings.EqualFold(d.Properties.RoleName, f.RoleName) ||
			f.RoleType != "" && !strings.EqualFold(d.Properties.Type, f.RoleType) ||
			!visibleAt(d, scope.String(), f.AtScopeAndBelow) {
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Definition) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	keys := make([]string, len(out))
	for i, d := range out {
		keys[i] = strings.ToLower(d.Name)
	}
	return req.PageKeys(keys, func(i int) (any, error) { return out[i], nil })
}

// visibleAt reports whether a role definition is listed at scope: it is assignable there
// (or, with below, at a scope below it).
func visibleAt(d Definition, scope string, below bool) bool {
	for _, s := range d.Properties.AssignableScopes {
		if authz.Covers(s, scope) || below && authz.Covers(scope, s) {
			return true
		}
	}
	return false
}

func (p *Provider) putDefinition(ctx context.Context, req *arm.Request, scope resource.ID, guid string) (*arm.Response, error) {
	if !isGUID(guid) {
		return nil, resource.Errorf(resource.Invalid, "InvalidRoleDefinitionId", "The role definition ID '%s' is not valid. It must be a GUID.", guid)
	}
	if b, ok := authz.BuiltIn(guid); ok {
		return nil, builtInRefused(b.Name)
	}
	var in Definition
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	props := in.Properties
	props.RoleName = strings.TrimSpace(props.RoleName)
	if props.RoleName == "" {
		return nil, resource.Errorf(resource.Invalid, "RoleDefinitionNameNullOrEmpty", "The role definition name cannot be null or empty.")
	}
	if len(props.AssignableScopes) == 0 {
		return nil, resource.Errorf(resource.Invalid, "InvalidAssignableScopes", "The role definition must have at least one assignable scope, such as '%s'.", scope)
	}
	for i, s := range props.AssignableScopes {
		id, err := resource.Parse(s)
		if err != nil {
			return nil, resource.Errorf(resource.Invalid, "InvalidAssignableScopes", "The assignable scope '%s' is not a valid scope: use '/', '/subscriptions/{id}', a resource group or a resource ID.", s)
		}
		props.AssignableScopes[i] = id.String()
	}
	if err := p.authorizeScopes(ctx, req, guid, props.AssignableScopes); err != nil {
		return nil, err
	}
	if len(props.Permissions) == 0 {
		return nil, resource.Errorf(resource.Invalid, "InvalidRoleDefinitionPermissions", "The role definition must have a permissions block with actions.")
	}
	for i, perm := range props.Permissions {
		props.Permissions[i] = authz.Permission{Actions: orEmpty(perm.Actions), NotActions: orEmpty(perm.NotActions),
			DataActions: orEmpty(perm.DataActions), NotDataActions: orEmpty(perm.NotDataActions)}
	}
	props.Type = "CustomRole"
	for _, b := range authz.BuiltIns() {
		if strings.EqualFold(b.Name, props.RoleName) {
			return nil, sameName(props.RoleName)
		}
	}
	now := p.now().UTC()
	out := Definition{Name: guid, Type: TypeRoleDefinition}
	err := p.st.Update(ctx, func(tx store.Tx) error {
		defs, err := listStored[Definition](ctx, tx, TypeRoleDefinition)
		if err != nil {
			return err
		}
		at := scope
		props.CreatedOn, props.CreatedBy = &now, req.Caller.ObjectID
		for _, d := range defs {
			if strings.EqualFold(d.doc.Name, guid) {
				// An update: the definition stays where it was created.
				at = scopeOf(d.doc.ID)
				props.CreatedOn, props.CreatedBy = d.doc.Properties.CreatedOn, d.doc.Properties.CreatedBy
				out.Name = d.doc.Name
				continue
			}
			if strings.EqualFold(d.doc.Properties.RoleName, props.RoleName) {
				return sameName(props.RoleName)
			}
		}
		if err := arm.CheckGroupWritable(ctx, tx, at); err != nil {
			return err
		}
		if !isUpdate(defs, guid) && len(defs) >= MaxCustomRoles {
			return resource.Errorf(resource.Invalid, "RoleDefinitionLimitExceeded",
				"No more role definitions can be created: the limit of %d custom roles has been reached. Delete one you no longer use.", MaxCustomRoles)
		}
		props.UpdatedOn, props.UpdatedBy = &now, req.Caller.ObjectID
		out.Properties = props
		out.ID = arm.ExtensionID(at, TypeRoleDefinition, out.Name)
		return put(ctx, tx, at, TypeRoleDefinition, out.Name, out)
	})
	if err != nil {
		return nil, err
	}
	out.ID = definitionID(scope, out.Name)
	return &arm.Response{Status: http.StatusCreated, Body: out}, nil // armauthorization accepts only 201
}

func sameName(name string) error {
	return resource.Errorf(resource.Conflict, "RoleDefinitionWithSameNameExists",
		"A role definition named '%s' already exists in this directory. Use a different name.", name)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// authorizeScopes checks, as Azure does, that the caller may perform the request's action
// (write or delete role definitions) at every scope the custom role guid is assignable at now
// and at every scope in scopes (those a write makes it assignable at): a role defined for
// scopes the caller does not administer is not the caller's to change. It reads in its own
// transaction.
func (p *Provider) authorizeScopes(ctx context.Context, req *arm.Request, guid string, scopes []string) error {
	var cur *stored[Definition]
	if err := p.st.View(ctx, func(tx store.Tx) error {
		var err error
		cur, err = findCustom(ctx, tx, guid)
		return err
	}); err != nil {
		return err
	}
	if cur != nil {
		scopes = append(slices.Clone(scopes), cur.doc.Properties.AssignableScopes...)
	}
	for _, s := range scopes {
		if err := req.Authorize(ctx, req.Action, s); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provider) deleteDefinition(ctx context.Context, req *arm.Request, scope resource.ID, guid string) (*arm.Response, error) {
	if b, ok := authz.BuiltIn(guid); ok {
		return nil, builtInRefused(b.Name)
	}
	if err := p.authorizeScopes(ctx, req, guid, nil); err != nil {
		return nil, err
	}
	var gone *Definition
	err := p.st.Update(ctx, func(tx store.Tx) error {
		d, err := findCustom(ctx, tx, guid)
		if err != nil || d == nil {
			return err
		}
		as, err := listStored[Assignment](ctx, tx, TypeRoleAssignment)
		if err != nil {
			return err
		}
		for _, a := range as {
			if g, _ := guidOfDefinitionID(a.doc.Properties.RoleDefinitionID); strings.EqualFold(g, guid) {
				return resource.Errorf(resource.Conflict, "RoleDefinitionHasAssignments",
					"There are existing role assignments referencing role '%s', such as '%s'. Delete them first.", d.doc.Properties.RoleName, a.doc.ID)
			}
		}
		if err := tx.Delete(ctx, d.key); err != nil {
			return fmt.Errorf("delete role definition %s: %w", guid, err)
		}
		gone = &d.doc
		return nil
	})
	if err != nil {
		return nil, err
	}
	if gone == nil {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	gone.ID = definitionID(scope, gone.Name)
	return &arm.Response{Body: gone}, nil
}

func (p *Provider) serveAssignment(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	scope, name := target(req.Target)
	if req.Target.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return p.listAssignments(ctx, req, scope)
	}
	key := strings.ToLower(arm.ExtensionID(scope, TypeRoleAssignment, name))
	switch req.Method {
	case http.MethodGet:
		var r store.Resource
		err := p.st.View(ctx, func(tx store.Tx) error {
			var err error
			r, err = tx.Get(ctx, key)
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil, assignmentNotFound(name)
		}
		if err != nil {
			return nil, fmt.Errorf("read role assignment %s: %w", key, err)
		}
		return &arm.Response{Body: json.RawMessage(r.Body)}, nil
	case http.MethodPut:
		return p.putAssignment(ctx, req, scope, name)
	case http.MethodDelete:
		var gone json.RawMessage
		err := p.st.Update(ctx, func(tx store.Tx) error {
			r, err := tx.Get(ctx, key)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read role assignment %s: %w", key, err)
			}
			gone = r.Body
			return tx.Delete(ctx, key)
		})
		if err != nil {
			return nil, err
		}
		if gone == nil {
			return &arm.Response{Status: http.StatusNoContent}, nil
		}
		return &arm.Response{Body: gone}, nil
	}
	return nil, arm.MethodNotAllowed(req)
}

func assignmentNotFound(name string) error {
	return resource.Errorf(resource.NotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name)
}

// selects reports whether the list of role assignments at scope with filter f includes a:
// without atScope(), assignments at, above and below the scope; with it, at and above.
func (f filter) selects(a AssignmentProperties, scope string) bool {
	if f.PrincipalID != "" && !strings.EqualFold(a.PrincipalID, f.PrincipalID) {
		return false
	}
	return authz.Covers(a.Scope, scope) || !f.AtScope && authz.Covers(scope, a.Scope)
}

func (p *Provider) listAssignments(ctx context.Context, req *arm.Request, scope resource.ID) (*arm.Response, error) {
	f, err := parseFilter(req.Query.Get("$filter"))
	if err != nil {
		return nil, err
	}
	var as []stored[Assignment]
	if err := p.st.View(ctx, func(tx store.Tx) error {
		as, err = listStored[Assignment](ctx, tx, TypeRoleAssignment)
		return err
	}); err != nil {
		return nil, err
	}
	visible := req.Filter()
	var keys []string
	var out []Assignment
	for _, a := range as { // ordered by key
		if visible(TypeRoleAssignment, a.doc.ID) && f.selects(a.doc.Properties, scope.String()) {
			keys = append(keys, a.key)
			out = append(out, a.doc)
		}
	}
	return req.PageKeys(keys, func(i int) (any, error) { return out[i], nil })
}

func (p *Provider) putAssignment(ctx context.Context, req *arm.Request, scope resource.ID, name string) (*arm.Response, error) {
	if !isGUID(name) {
		return nil, resource.Errorf(resource.Invalid, "InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name)
	}
	var in struct {
		Properties AssignmentProperties `json:"properties"`
	}
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	props := in.Properties
	guid, ok := guidOfDefinitionID(props.RoleDefinitionID)
	if !ok {
		return nil, resource.Errorf(resource.Invalid, "InvalidRoleDefinitionId",
			"The role definition ID '%s' is not valid. Use '/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionGuid}'.", props.RoleDefinitionID)
	}
	if strings.TrimSpace(props.PrincipalID) == "" {
		return nil, resource.Errorf(resource.Invalid, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
	}
	id := arm.ExtensionID(scope, TypeRoleAssignment, name)
	key := strings.ToLower(id)
	status := http.StatusCreated
	var out Assignment
	err := p.st.Update(ctx, func(tx store.Tx) error {
		if err := arm.CheckGroupWritable(ctx, tx, scope); err != nil {
			return err
		}
		if scope.Namespace != "" {
			if _, err := arm.Load(ctx, tx, scope, nil); err != nil {
				return err
			}
		}
		role, err := findRole(ctx, tx, guid)
		if err != nil {
			return err
		}
		if !authz.AssignableAt(role, scope.String()) {
			return resource.Errorf(resource.Invalid, "RoleDefinitionNotAssignableAtScope",
				"The role '%s' cannot be assigned at scope '%s': it is assignable only at or below %s.", role.Name, scope, strings.Join(role.AssignableScopes, ", "))
		}
		kind, err := principalKind(ctx, tx, props.PrincipalID)
		if err != nil {
			return err
		}
		if props.PrincipalType != "" && !strings.EqualFold(props.PrincipalType, kind) {
			return resource.Errorf(resource.Invalid, "UnmatchedPrincipalType",
				"The PrincipalId '%s' has type '%s', which is different from specified PrincipalType '%s'.", props.PrincipalID, kind, props.PrincipalType)
		}
		as, err := listStored[Assignment](ctx, tx, TypeRoleAssignment)
		if err != nil {
			return err
		}
		now := p.now().UTC()
		out = Assignment{ID: id, Name: name, Type: TypeRoleAssignment, Properties: AssignmentProperties{
			RoleDefinitionID: definitionID(scope, role.ID), PrincipalID: props.PrincipalID, PrincipalType: kind,
			Scope: scope.String(), Description: props.Description, Condition: props.Condition, ConditionVersion: props.ConditionVersion,
			CreatedOn: &now, UpdatedOn: &now, CreatedBy: req.Caller.ObjectID, UpdatedBy: req.Caller.ObjectID,
		}}
		for _, a := range as {
			cur := a.doc.Properties
			sameRole := strings.EqualFold(a.doc.assignment().RoleID, role.ID)
			samePrincipal := strings.EqualFold(cur.PrincipalID, props.PrincipalID)
			switch {
			case strings.EqualFold(a.doc.Name, name):
				if a.key != key || !sameRole || !samePrincipal {
					return resource.Errorf(resource.Conflict, "RoleAssignmentUpdateNotPermitted",
						"Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
				}
				status, out = http.StatusOK, a.doc // re-creating the same assignment changes nothing
				return nil
			case sameRole && samePrincipal && authz.Covers(cur.Scope, scope.String()) && authz.Covers(scope.String(), cur.Scope):
				return resource.Errorf(resource.Conflict, "RoleAssignmentExists", "The role assignment already exists. Its ID is '%s'.", a.doc.ID)
			}
		}
		if err := checkAssignmentLimit(as, scope); err != nil {
			return err
		}
		return put(ctx, tx, scope, TypeRoleAssignment, name, out)
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: out}, nil
}

// Limits, as Azure's: role assignments per subscription (assignments at the root scope count
// against a limit of their own, as at a management group) and custom roles per tenant.
const (
	MaxAssignmentsPerSubscription = 4000
	MaxAssignmentsAtRoot          = 500
	MaxCustomRoles                = 5000
)

// checkAssignmentLimit refuses a new assignment at scope if the assignments as already fill its
// subscription's (or the root's) quota.
func checkAssignmentLimit(as []stored[Assignment], scope resource.ID) error {
	limit, where := MaxAssignmentsPerSubscription, "per subscription"
	if scope.Subscription == "" {
		limit, where = MaxAssignmentsAtRoot, "at the root scope"
	}
	n := 0
	for _, a := range as {
		if strings.EqualFold(scopeOf(a.doc.ID).Subscription, scope.Subscription) {
			n++
		}
	}
	if n >= limit {
		return resource.Errorf(resource.Invalid, "RoleAssignmentLimitExceeded",
			"No more role assignments can be created: the limit of %d role assignments %s has been reached. Assign roles to groups of scopes (a resource group, the subscription) instead of to each resource, or remove assignments you no longer need.", limit, where)
	}
	return nil
}

func isUpdate(defs []stored[Definition], guid string) bool {
	for _, d := range defs {
		if strings.EqualFold(d.doc.Name, guid) {
			return true
		}
	}
	return false
}

// TypePermissions is the caller's effective permissions at a scope (Azure's "list permissions
// for a resource group / resource"), which clients such as the portal use to show only what the
// caller may do.
const TypePermissions = "Microsoft.Authorization/permissions"

// permissionsOut is one entry of a permissions list: a role's permissions that apply at the
// scope through one of the caller's assignments.
type permissionsOut struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// servePermissions answers GET {scope}/providers/Microsoft.Authorization/permissions: the
// permissions of every role the caller holds at the scope or above it, one entry per role
// permission block, as Azure lists them. Any caller may ask about itself.
func (p *Provider) servePermissions(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet || !req.Target.Collection {
		return nil, resource.Errorf(resource.Invalid, "UnsupportedOperation",
			"Only GET of {scope}/providers/Microsoft.Authorization/permissions is supported.")
	}
	scope := req.Target.ID.String()
	var (
		as    []authz.Assignment
		roles []authz.Role
	)
	if err := p.st.View(ctx, func(tx store.Tx) error {
		var err error
		as, roles, err = Policy(ctx, tx, req.Caller.ObjectID)
		return err
	}); err != nil {
		return nil, err
	}
	byID := map[string]authz.Role{}
	for _, r := range roles {
		byID[strings.ToLower(r.ID)] = r
	}
	out := []permissionsOut{}
	for _, a := range as {
		r, ok := byID[strings.ToLower(a.RoleID)]
		if !ok || !authz.Covers(a.Scope, scope) {
			continue
		}
		for _, perm := range r.Permissions {
			out = append(out, permissionsOut{Actions: orEmpty(perm.Actions), NotActions: orEmpty(perm.NotActions),
				DataActions: orEmpty(perm.DataActions), NotDataActions: orEmpty(perm.NotDataActions)})
		}
	}
	return &arm.Response{Body: map[string]any{"value": out}}, nil
}

// findRole returns the built-in or custom role with GUID guid, or 400 RoleDefinitionDoesNotExist.
func findRole(ctx context.Context, tx store.Tx, guid string) (authz.Role, error) {
	if b, ok := authz.BuiltIn(guid); ok {
		return b, nil
	}
	d, err := findCustom(ctx, tx, guid)
	if err != nil {
		return authz.Role{}, err
	}
	if d == nil {
		e := definitionNotFound(guid)
		e.Kind = resource.Invalid
		return authz.Role{}, e
	}
	return d.doc.role(), nil
}

// principalKind returns the kind ("User" or "ServicePrincipal") of the principal with object
// id id, or 400 PrincipalNotFound.
func principalKind(ctx context.Context, tx store.Tx, id string) (string, error) {
	pr, err := tx.Principal(ctx, id)
	if err == nil && !strings.EqualFold(pr.ObjectID, id) {
		err = store.ErrNotFound // a login, not an object id
	}
	if errors.Is(err, store.ErrNotFound) {
		return "", resource.Errorf(resource.Invalid, "PrincipalNotFound",
			"Principal %s does not exist in the directory. Check that you have the correct principal ID (the object id of a user or service principal).", id)
	}
	if err != nil {
		return "", fmt.Errorf("look up principal %s: %w", id, err)
	}
	var doc struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(pr.Body, &doc); err != nil {
		return "", fmt.Errorf("decode principal %s: %w", id, err)
	}
	return doc.Kind, nil
}

// EnsureAssignment gives principalID the role roleID at scope unless it has it there already
// (used at first start and at every start after it). It writes to st directly.
func EnsureAssignment(ctx context.Context, st store.Store, scope resource.ID, roleID, principalID, principalType string) error {
	return st.Update(ctx, func(tx store.Tx) error {
		as, err := listStored[Assignment](ctx, tx, TypeRoleAssignment)
		if err != nil {
			return err
		}
		for _, a := range as {
			if strings.EqualFold(a.doc.Properties.PrincipalID, principalID) && strings.EqualFold(a.doc.assignment().RoleID, roleID) &&
				strings.EqualFold(a.doc.Properties.Scope, scope.String()) {
				return nil
			}
		}
		name := resource.NewGUID()
		now := time.Now().UTC()
		return put(ctx, tx, scope, TypeRoleAssignment, name, Assignment{
			ID: arm.ExtensionID(scope, TypeRoleAssignment, name), Name: name, Type: TypeRoleAssignment,
			Properties: AssignmentProperties{RoleDefinitionID: definitionID(scope, roleID), PrincipalID: principalID,
				PrincipalType: principalType, Scope: scope.String(), CreatedOn: &now, UpdatedOn: &now},
		})
	})
}
