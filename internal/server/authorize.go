package server

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/providers/authorization"
	"github.com/pglink/pglink/internal/store"
)

// authorizer is the front door's arm.Authorizer. It keeps every role assignment and role
// definition in memory, keyed by the store's revision: a request reads the revision (one cheap
// query) and, if anything was committed since the last load, the change feed since then; it
// reloads only if a role assignment or definition is among the changes. So a stream of reads
// and unrelated writes does not decode every assignment each time, and no request decides over
// a policy older than the last commit it could have seen.
type authorizer struct {
	st store.Store

	mu          sync.Mutex
	loaded      bool
	rev         int64
	assignments []authz.Assignment // every principal's
	roles       []authz.Role
}

func newAuthorizer(st store.Store) *authorizer { return &authorizer{st: st} }

var _ arm.Authorizer = (*authorizer)(nil)

// Permissions implements arm.Authorizer.
func (a *authorizer) Permissions(ctx context.Context, principalID string) (arm.Permissions, error) {
	all, roles, err := a.policy(ctx)
	if err != nil {
		return nil, err
	}
	p := permissions{principal: principalID, roles: roles}
	for _, as := range all {
		if strings.EqualFold(as.PrincipalID, principalID) {
			p.assignments = append(p.assignments, as)
		}
	}
	return p, nil
}

// policy returns every assignment and role as of the store's current revision.
func (a *authorizer) policy(ctx context.Context) ([]authz.Assignment, []authz.Role, error) {
	rev, err := a.st.Revision(ctx)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	loaded, since := a.loaded, a.rev
	if loaded && since >= rev {
		all, roles := a.assignments, a.roles
		a.mu.Unlock()
		return all, roles, nil
	}
	a.mu.Unlock()
	if loaded {
		changes, err := a.st.Changes(ctx, since, maxPolicyChanges)
		if err != nil {
			return nil, nil, err
		}
		if len(changes) < maxPolicyChanges && !slices.ContainsFunc(changes, func(c store.Change) bool {
			return strings.Contains(c.Key, authorizationSegment)
		}) {
			// Nothing of the policy changed up to rev: the loaded one holds at rev.
			a.mu.Lock()
			if a.rev == since {
				a.rev = rev
			}
			all, roles := a.assignments, a.roles
			a.mu.Unlock()
			return all, roles, nil
		}
	}
	var (
		all   []authz.Assignment
		roles []authz.Role
	)
	err = a.st.View(ctx, func(tx store.Tx) error {
		var err error
		all, roles, err = authorization.All(ctx, tx)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	// What was read is at least as new as rev: label it rev, so any later commit reloads.
	a.mu.Lock()
	if !a.loaded || rev >= a.rev {
		a.loaded, a.rev, a.assignments, a.roles = true, rev, all, roles
	}
	a.mu.Unlock()
	return all, roles, nil
}

// maxPolicyChanges bounds the change feed read to decide whether to reload; more changes than
// that since the last load reload the policy.
const maxPolicyChanges = 1000

// authorizationSegment is in the keys of role assignments and role definitions, at any scope.
const authorizationSegment = "/providers/microsoft.authorization/"

// permissions are one principal's assignments and every role, as loaded; read only.
type permissions struct {
	principal   string
	assignments []authz.Assignment
	roles       []authz.Role
}

// Allowed implements arm.Permissions.
func (p permissions) Allowed(action, scope string) bool {
	return authz.Decide(authz.Request{PrincipalID: p.principal, Action: action, Scope: scope}, p.assignments, p.roles).Allowed
}

// Reaches implements arm.Permissions.
func (p permissions) Reaches(scope string) bool {
	for _, a := range p.assignments {
		if authz.Covers(a.Scope, scope) || authz.Covers(scope, a.Scope) {
			return true
		}
	}
	return false
}

// allowedAtRoot reports whether principalID may perform action at the root scope: the identity
// admin API's check.
func (a *authorizer) allowedAtRoot(ctx context.Context, principalID, action string) (bool, error) {
	p, err := a.Permissions(ctx, principalID)
	if err != nil {
		return false, err
	}
	return p.Allowed(action, "/"), nil
}
