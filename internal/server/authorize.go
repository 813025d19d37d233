package server

import (
	"context"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/providers/authorization"
	"github.com/pglink/pglink/internal/store"
)

// authorizer is the front door's arm.Authorizer: it loads a principal's role assignments and
// every role definition in one read transaction and decides with authz.Decide.
type authorizer struct {
	st store.Store
}

var _ arm.Authorizer = authorizer{}

// Permissions implements arm.Authorizer.
func (a authorizer) Permissions(ctx context.Context, principalID string) (arm.Permissions, error) {
	p := permissions{principal: principalID}
	err := a.st.View(ctx, func(tx store.Tx) error {
		var err error
		p.assignments, p.roles, err = authorization.Policy(ctx, tx, principalID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

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
func (a authorizer) allowedAtRoot(ctx context.Context, principalID, action string) (bool, error) {
	p, err := a.Permissions(ctx, principalID)
	if err != nil {
		return false, err
	}
	return p.Allowed(action, "/"), nil
}
