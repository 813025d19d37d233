// Package resources is the Microsoft.Resources provider: subscriptions and resource groups.
package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// APIVersions are the Microsoft.Resources api-versions served: those armresources and az send.
var APIVersions = []string{
	"2016-06-01", "2018-05-01", "2019-05-10", "2019-06-01", "2019-10-01", "2019-11-01", "2020-01-01",
	"2020-06-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-01-01", "2022-09-01", "2022-12-01",
	"2023-07-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01",
}

// Subscription is a subscription as Azure serves it.
type Subscription struct {
	ID                   string            `json:"id"`
	SubscriptionID       string            `json:"subscriptionId"`
	TenantID             string            `json:"tenantId"`
	DisplayName          string            `json:"displayName"`
	State                string            `json:"state"`
	AuthorizationSource  string            `json:"authorizationSource"`
	SubscriptionPolicies map[string]string `json:"subscriptionPolicies"`
}

// Group is a resource group.
type Group struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

// Cleanup undoes the side effects of a resource that a resource group delete removes (e.g.
// stops and removes a database server). It must be idempotent.
type Cleanup func(ctx context.Context, r store.Resource) error

// Remover is one resource type's own delete logic, as a resource group delete runs it for each
// resource of the type that it removes. Both parts must be idempotent: a delete interrupted by
// a crash runs them again.
type Remover struct {
	Type string // full ARM type, e.g. "Microsoft.Network/privateEndpoints"
	// Cleanup, if set, undoes side effects outside the store before anything is removed.
	Cleanup Cleanup
	// Remove, if set, deletes r inside tx as the type's own delete does, including what that
	// changes in other groups (connections on servers elsewhere, addresses in subnets
	// elsewhere). A resource already gone is not an error; a *resource.Error refuses the
	// whole group delete, which then changes nothing. Without Remove, r is deleted with the
	// group.
	Remove func(ctx context.Context, tx store.Tx, r store.Resource) error
}

// Provider serves Microsoft.Resources.
type Provider struct {
	st       store.Store
	log      *slog.Logger
	removers []Remover
	rank     map[string]int // lower-cased type -> index in removers
}

// New returns the provider. A group delete removes resources of the removers' types in the
// order given (dependents first: private endpoints before the servers and subnets they use),
// then everything else in the group.
func New(st store.Store, log *slog.Logger, removers []Remover) *Provider {
	rank := map[string]int{}
	for i, r := range removers {
		rank[strings.ToLower(r.Type)] = i
	}
	return &Provider{st: st, log: log.With("component", "resources"), removers: removers, rank: rank}
}

// EnsureSubscription creates the subscription if it does not exist (used at first start).
func EnsureSubscription(ctx context.Context, st store.Store, subscriptionID, tenantID, name string) error {
	id := resource.ID{Subscription: subscriptionID}
	return st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, id.Key()); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err := arm.Save(ctx, tx, id, Subscription{
			ID: id.String(), SubscriptionID: subscriptionID, TenantID: tenantID, DisplayName: name,
			State: "Enabled", AuthorizationSource: "RoleBased",
			SubscriptionPolicies: map[string]string{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
		})
		return err
	})
}

// Types returns the resource types the provider serves.
func (p *Provider) Types() []arm.Type {
	return []arm.Type{
		{Name: resource.TypeSubscription, APIVersions: APIVersions, Handler: p.serveSubscription},
		{Name: resource.TypeResourceGroup, APIVersions: APIVersions, Handler: p.serveGroup, NoGroupCheck: true},
	}
}

// Register adds the provider's operations to w.
func (p *Provider) Register(w *operation.Workers) {
	w.Register(kindGroupDelete, p.runDelete)
	w.RegisterFailure(kindGroupDelete, p.failDelete)
}

const kindGroupDelete = "resources.group.delete"

func (p *Provider) serveSubscription(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req)
	}
	if req.Target.Collection {
		return req.Page(ctx, p.st, store.ListOptions{Parent: "/", Type: resource.TypeSubscription},
			func(r store.Resource) (any, error) { return arm.Body(r, false), nil })
	}
	var r store.Resource
	err := p.st.View(ctx, func(tx store.Tx) error {
		var err error
		r, err = arm.Load(ctx, tx, req.Target.ID, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Body: arm.Body(r, false)}, nil
}

func (p *Provider) serveGroup(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if req.Target.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		return req.Page(ctx, p.st, store.ListOptions{Parent: id.Key(), Type: resource.TypeResourceGroup},
			func(r store.Resource) (any, error) { return arm.Body(r, false), nil })
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		var r store.Resource
		err := p.st.View(ctx, func(tx store.Tx) error {
			var err error
			r, err = arm.Load(ctx, tx, id, nil)
			return err
		})
		if err != nil {
			return nil, err
		}
		if req.Method == http.MethodHead {
			return &arm.Response{Status: http.StatusNoContent}, nil // as ARM answers a group that exists
		}
		return &arm.Response{Body: arm.Body(r, false)}, nil
	case http.MethodPut, http.MethodPatch:
		return p.putGroup(ctx, req)
	case http.MethodDelete:
		return p.deleteGroup(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req)
}

// validGroupName follows ARM's rule: 1-90 of letters, digits, '-', '_', '(', ')', '.', not
// ending in '.'.
func validGroupName(n string) bool {
	if len(n) == 0 || len(n) > 90 || strings.HasSuffix(n, ".") {
		return false
	}
	for _, c := range n {
		if !(c == '-' || c == '_' || c == '(' || c == ')' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func (p *Provider) putGroup(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if !validGroupName(id.ResourceGroup) {
		return nil, resource.Errorf(resource.Invalid, "InvalidResourceGroup",
			"The provided resource group name '%s' has these invalid characters or length. Use 1-90 letters, digits, '-', '_', '(', ')' and '.', not ending in '.'.", id.ResourceGroup)
	}
	var in Group
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	status := http.StatusOK
	var out Group
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.Get(ctx, id.Key())
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var curp *store.Resource
		if exists {
			curp = &cur
		}
		if err := req.CheckPreconditions(curp); err != nil {
			return err
		}
		if !exists {
			if req.Method == http.MethodPatch {
				return resource.NotFoundError(id)
			}
			if strings.TrimSpace(in.Location) == "" {
				return resource.Errorf(resource.Invalid, "LocationRequired", "The location property is required for this definition.")
			}
			status = http.StatusCreated
			out = Group{ID: id.String(), Name: id.ResourceGroup, Type: resource.TypeResourceGroup, Location: normLocation(in.Location), Tags: in.Tags}
			out.Properties.ProvisioningState = "Succeeded"
		} else {
			if err := jsonUnmarshal(cur.Body, &out); err != nil {
				return err
			}
			if out.Properties.ProvisioningState == arm.GroupDeleting {
				return arm.GroupBeingDeleted(id.ResourceGroup)
			}
			if in.Location != "" && normLocation(in.Location) != out.Location {
				return resource.Errorf(resource.Conflict, "InvalidResourceGroupLocation",
					"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", in.Location, out.Location)
			}
			if in.Tags != nil || req.Method == http.MethodPut {
				out.Tags = in.Tags
			}
			out.ID, out.Name = id.String(), id.ResourceGroup // casing as last written
		}
		_, err = arm.Save(ctx, tx, id, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Status: status, Body: out}, nil
}

// normLocation lower-cases a location and removes spaces ("East US" -> "eastus"), as ARM
// matches locations.
func normLocation(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

func (p *Provider) deleteGroup(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var op store.Operation
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var g Group
		if _, err := arm.Load(ctx, tx, id, &g); err != nil {
			return err
		}
		o, err := operation.Begin(ctx, tx, kindGroupDelete, id, g.Location, http.MethodDelete,
			operation.Digest("delete"), opMeta(req), nil)
		if err != nil {
			return err
		}
		op = o
		g.Properties.ProvisioningState = arm.GroupDeleting
		_, err = arm.Save(ctx, tx, id, g)
		return err
	})
	if resource.KindOf(err) == resource.NotFound {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	if err != nil {
		return nil, err
	}
	return &arm.Response{Op: &op, Status: http.StatusOK}, nil // armresources accepts 200 or 202
}

// runDelete removes everything in a resource group, each resource through its type's own
// delete logic, then the group. While the group is Deleting no request may write into it, so
// the operations already running on its resources are the last: it waits for them first
// (operation.ErrBusy). It
// then checks, in a transaction it rolls back, that every type's delete accepts (a subnet that
// a private endpoint of another group uses refuses it); runs the types' cleanups (database
// clusters); and returns the commit that removes it all in one transaction.
func (p *Provider) runDelete(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	if err := p.checkIdle(ctx, id); err != nil {
		return nil, err
	}
	err = p.st.Update(ctx, func(tx store.Tx) error {
		if err := p.removeAll(ctx, tx, id); err != nil {
			return err
		}
		return errDryRun
	})
	if !errors.Is(err, errDryRun) {
		return nil, err
	}
	var inside []store.Resource
	if err := p.st.View(ctx, func(tx store.Tx) error {
		inside, err = tx.List(ctx, store.ListOptions{Prefix: id.Key()})
		return err
	}); err != nil {
		return nil, fmt.Errorf("list resources of %s: %w", id, err)
	}
	var cleaned []store.Resource
	for _, r := range p.ordered(inside) {
		if i, ok := p.rank[strings.ToLower(r.Type)]; ok && p.removers[i].Cleanup != nil {
			if err := p.removers[i].Cleanup(ctx, r); err != nil {
				// Should this be the last attempt, what was cleaned up is gone (as in Azure, a
				// failed group delete keeps what it had not deleted yet) and the group is back.
				return p.partial(id, cleaned), fmt.Errorf("clean up %s: %w", r.ID, err)
			}
			cleaned = append(cleaned, r)
		}
	}
	return func(ctx context.Context, tx store.Tx) error { return p.removeAll(ctx, tx, id) }, nil
}

// partial returns the commit of a group delete that failed after cleaning up some resources:
// those are removed, through their type's Remove, and the group is Succeeded again.
func (p *Provider) partial(id resource.ID, cleaned []store.Resource) operation.Commit {
	return func(ctx context.Context, tx store.Tx) error {
		for _, r := range cleaned {
			if rm := p.removers[p.rank[strings.ToLower(r.Type)]].Remove; rm != nil {
				if err := rm(ctx, tx, r); err != nil {
					return fmt.Errorf("remove %s: %w", r.ID, err)
				}
			} else if err := tx.Delete(ctx, r.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("remove %s: %w", r.ID, err)
			}
		}
		return groupBack(ctx, tx, id)
	}
}

var errDryRun = errors.New("dry run")

// removeAll removes group id and everything in it inside tx, each resource through its type's
// Remove, in order.
func (p *Provider) removeAll(ctx context.Context, tx store.Tx, id resource.ID) error {
	inside, err := tx.List(ctx, store.ListOptions{Prefix: id.Key()})
	if err != nil {
		return fmt.Errorf("list resources of %s: %w", id, err)
	}
	for _, r := range p.ordered(inside) {
		if i, ok := p.rank[strings.ToLower(r.Type)]; ok && p.removers[i].Remove != nil {
			if err := p.removers[i].Remove(ctx, tx, r); err != nil {
				if _, ok := resource.AsError(err); ok {
					return err
				}
				return fmt.Errorf("remove %s: %w", r.ID, err)
			}
		}
	}
	return arm.Delete(ctx, tx, id)
}

// ordered returns the resources a group delete handles, in removal order: by the removers'
// order, deepest first within a type; resources of other types are left to the group's
// delete.
func (p *Provider) ordered(all []store.Resource) []store.Resource {
	var out []store.Resource
	for _, r := range all {
		if _, ok := p.rank[strings.ToLower(r.Type)]; ok {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b store.Resource) int {
		ra, rb := p.rank[strings.ToLower(a.Type)], p.rank[strings.ToLower(b.Type)]
		if ra != rb {
			return ra - rb
		}
		return strings.Count(b.Key, "/") - strings.Count(a.Key, "/")
	})
	return out
}

// checkIdle returns operation.ErrBusy while an operation runs on a resource inside group id.
func (p *Provider) checkIdle(ctx context.Context, id resource.ID) error {
	var busy string
	err := p.st.View(ctx, func(tx store.Tx) error {
		inside, err := tx.List(ctx, store.ListOptions{Prefix: id.Key()})
		if err != nil {
			return err
		}
		for _, r := range inside {
			if r.Key == id.Key() {
				continue
			}
			a, err := tx.ActiveOperation(ctx, r.Key)
			if err == nil {
				busy = a.ID + " on " + r.ID
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find operations in %s: %w", id, err)
	}
	if busy != "" {
		return fmt.Errorf("delete of %s waits for operation %s: %w", id, busy, operation.ErrBusy)
	}
	return nil
}

// failDelete puts a group whose delete failed back to Succeeded: the delete changed nothing in
// the store, and the group accepts writes (and another delete) again.
func (p *Provider) failDelete(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	return func(ctx context.Context, tx store.Tx) error { return groupBack(ctx, tx, id) }, nil
}

// groupBack sets group id, if it exists, back to Succeeded inside tx.
func groupBack(ctx context.Context, tx store.Tx, id resource.ID) error {
	var g Group
	if _, err := arm.Load(ctx, tx, id, &g); err != nil {
		if resource.KindOf(err) == resource.NotFound {
			return nil
		}
		return err
	}
	g.Properties.ProvisioningState = "Succeeded"
	_, err := arm.Save(ctx, tx, id, g)
	return err
}

// OpMeta returns the operation metadata of a request.
func opMeta(req *arm.Request) operation.Meta { return arm.OpMeta(req, "") }

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode stored resource: %w", err)
	}
	return nil
}
