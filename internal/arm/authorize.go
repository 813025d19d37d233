package arm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Authorizer loads what callers may do. The front door owns the interface; the server
// implements it over the stored role assignments and authz.Decide.
type Authorizer interface {
	// Permissions loads what the principal with object id principalID may do, as of the call,
	// in its own read transaction: it must not be called inside another transaction. It fails
	// only when the store does. Safe for concurrent use.
	Permissions(ctx context.Context, principalID string) (Permissions, error)
}

// Permissions are what one principal may do, as an Authorizer loaded them. Safe for concurrent
// use; they do no I/O.
type Permissions interface {
	// Allowed reports whether the principal may perform action on scope (an ARM ID, "/" for
	// the root).
	Allowed(action, scope string) bool
	// Reaches reports whether the principal holds a role assignment at scope, above it or
	// below it: whether anything at or below scope may be visible to it.
	Reaches(scope string) bool
}

// Linked is an action a request performs on another resource than the one it addresses (a
// private endpoint joins a subnet, say): a linked scope in Azure's terms.
type Linked struct {
	Action string // e.g. "Microsoft.Network/virtualNetworks/subnets/join/action"
	Scope  string // ARM ID of the linked resource
}

// ActionApproveSuffix ends the action that lets a caller approve private endpoint connections
// to a resource of a type: "{type}/privateEndpointConnectionsApproval/action".
const ActionApproveSuffix = "/privateEndpointConnectionsApproval/action"

// ActionJoinSubnet is the action a private endpoint needs on its subnet.
const ActionJoinSubnet = "Microsoft.Network/virtualNetworks/subnets/join/action"

// Action returns the RBAC action of verb ("read", "write", "delete" or "{name}/action") on
// resources of type typ, as Azure spells it: resource groups are
// "Microsoft.Resources/subscriptions/resourceGroups".
func Action(typ, verb string) string {
	if strings.EqualFold(typ, resource.TypeResourceGroup) {
		typ = "Microsoft.Resources/subscriptions/resourceGroups"
	}
	return typ + "/" + verb
}

// permissions returns the caller's permissions, loading them once per request; nil when the
// front door enforces nothing (it has no Authorizer).
func (r *Request) permissions(ctx context.Context) (Permissions, error) {
	if r.authorizer == nil {
		return nil, nil
	}
	if r.perms == nil {
		p, err := r.authorizer.Permissions(ctx, r.Caller.ObjectID)
		if err != nil {
			return nil, fmt.Errorf("load permissions of %s: %w", r.Caller.ObjectID, err)
		}
		r.perms = p
	}
	return r.perms, nil
}

// Authorize returns nil if the caller may perform action on scope, and otherwise 403
// AuthorizationFailed naming them. Providers call it for a check beyond the request's own
// action (approving a connection needs the approval action on its server). It loads the
// caller's permissions if the request has not yet: call it outside any transaction.
func (r *Request) Authorize(ctx context.Context, action, scope string) error {
	p, err := r.permissions(ctx)
	if err != nil || p == nil || p.Allowed(action, scope) {
		return err
	}
	return authorizationFailed(r, action, scope)
}

// AuthorizeLinked returns nil if the caller may perform every linked action, and otherwise
// 403 LinkedAuthorizationFailed naming the request's own action and scope and every linked
// action it may not perform. Call it outside any transaction.
func (r *Request) AuthorizeLinked(ctx context.Context, links ...Linked) error {
	p, err := r.permissions(ctx)
	if err != nil || p == nil {
		return err
	}
	var actions, scopes []string
	for _, l := range links {
		if !p.Allowed(l.Action, l.Scope) {
			actions, scopes = append(actions, l.Action), append(scopes, l.Scope)
		}
	}
	if len(actions) == 0 {
		return nil
	}
	return resource.Errorf(resource.Forbidden, "LinkedAuthorizationFailed",
		"The client '%s' with object id '%s' has permission to perform action '%s' on scope '%s'; however, it does not have permission to perform action(s) '%s' on the linked scope(s) '%s' (respectively) or the linked scope(s) are invalid.",
		callerName(r.Caller), r.Caller.ObjectID, r.Action, r.Target.Addressed(), strings.Join(actions, ","), strings.Join(scopes, ","))
}

func authorizationFailed(r *Request, action, scope string) error {
	return resource.Errorf(resource.Forbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		callerName(r.Caller), r.Caller.ObjectID, action, scope)
}

// authorize decides whether the caller may perform the request's action on what it
// addresses, before the body is read. A list the caller may not read at its scope is served
// filtered to the items it may read when it holds an assignment at or below that scope and
// the collection hangs off a subscription or resource group (see Request.visible); otherwise
// it is refused like any other request. The subscription list shows the subscriptions the
// caller holds any assignment in, and a subscription is readable by anyone who holds one in
// it, as in Azure. The polling endpoints decide in their handlers (see authorizeOperation).
func (s *Server) authorize(ctx context.Context, req *Request, typ *Type) error {
	p, err := req.permissions(ctx)
	if err != nil || p == nil || typ.ownAuthz || typ.SelfService {
		return err
	}
	t := req.Target
	scope := t.Addressed()
	if strings.EqualFold(typ.Name, resource.TypeSubscription) && req.Method == http.MethodGet {
		if t.Collection {
			req.filter = func(r store.Resource) bool { return p.Reaches(r.ID) }
			return nil
		}
		if p.Allowed(req.Action, scope) || p.Reaches(scope) {
			return nil
		}
		return authorizationFailed(req, req.Action, scope)
	}
	if p.Allowed(req.Action, scope) {
		return nil
	}
	if req.Method == http.MethodGet && typ.NarrowScope != nil {
		sub := "/subscriptions/" + t.ID.Subscription + "/"
		if n := typ.NarrowScope(req); t.ID.Subscription != "" && len(n) > len(sub) && strings.EqualFold(n[:len(sub)], sub) &&
			p.Allowed(req.Action, n) {
			return nil
		}
	}
	// A provider's location metadata (capabilities) describes no resource: anyone who holds a
	// role in the subscription may read it, so az's server commands work for a database
	// administrator whose role is on one resource group.
	if req.Method == http.MethodGet && isLocationMetadata(typ.Name) && t.ID.Subscription != "" &&
		p.Reaches("/subscriptions/"+t.ID.Subscription) {
		return nil
	}
	if req.Method == http.MethodGet && t.Collection && !t.Extension && t.ID.Namespace == "" && p.Reaches(scope) {
		req.filter = func(r store.Resource) bool { return p.Allowed(Action(r.Type, "read"), r.ID) }
		return nil
	}
	return authorizationFailed(req, req.Action, scope)
}

// isLocationMetadata reports whether typ is a provider's per-location metadata
// ("{namespace}/locations/…").
func isLocationMetadata(typ string) bool {
	parts := strings.Split(typ, "/")
	return len(parts) >= 3 && strings.EqualFold(parts[1], "locations")
}

// Filter returns what decides whether the item of type typ with ARM ID id may be served in
// the request's list, and notes that the handler filters its list. Handlers that list through
// PageTx need not call it; others must call it before they list and apply it to every item,
// or a list the caller may read only in part is refused (checkFiltered).
func (r *Request) Filter() func(typ, id string) bool {
	if r.filter == nil {
		return func(string, string) bool { return true }
	}
	r.filtered = true
	f := r.filter
	return func(typ, id string) bool { return f(store.Resource{ID: id, Type: typ}) }
}

// checkFiltered refuses a list that had to be filtered but whose handler did not filter it
// (it does not list through PageTx): fail closed.
func (s *Server) checkFiltered(req *Request) error {
	if req.filter == nil || req.filtered {
		return nil
	}
	return authorizationFailed(req, req.Action, req.Target.Addressed())
}

// authorizeOperation lets the caller poll op if it started op, may read the resource op acts
// on, or may perform the polling endpoint's own read action.
func (s *Server) authorizeOperation(ctx context.Context, req *Request, op store.Operation) error {
	p, err := req.permissions(ctx)
	if err != nil || p == nil {
		return err
	}
	var env struct {
		Meta struct {
			CallerObjectID string `json:"callerObjectId"`
		} `json:"meta"`
	}
	if json.Unmarshal(op.Input, &env) == nil && env.Meta.CallerObjectID != "" &&
		strings.EqualFold(env.Meta.CallerObjectID, req.Caller.ObjectID) {
		return nil
	}
	if rid, err := resource.Parse(op.ResourceID); err == nil && p.Allowed(Action(rid.Type(), "read"), rid.String()) {
		return nil
	}
	return req.Authorize(ctx, req.Action, req.Target.Addressed())
}
