// Package authz is pglink's authorization model: Azure RBAC role definitions and role
// assignments, and Decide, the pure function that says whether a principal may perform an
// action at a scope. It does no I/O: callers load the assignments and role definitions and
// pass them in. The API front door and the data plane call the same function.
package authz

import (
	"fmt"
	"strings"
)

// Permission is one permissions block of a role definition. An action is granted by the
// block when it matches one of Actions and none of NotActions; NotActions subtract only within
// their own block, never from another block or another role. DataActions and NotDataActions
// are carried for clients; Decide does not evaluate them.
type Permission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// Role is a role definition.
type Role struct {
	ID          string // the role definition's GUID (its name in ARM)
	Name        string // roleName, e.g. "Network Contributor"
	Description string
	BuiltIn     bool // "BuiltInRole" rather than "CustomRole"
	Permissions []Permission
	// AssignableScopes are the scopes (ARM IDs, "/" for the root) at and below which the role
	// may be assigned. An assignment outside them grants nothing.
	AssignableScopes []string
}

// Assignment is a role assignment: the role RoleID granted to PrincipalID at Scope and
// everything below it.
type Assignment struct {
	ID          string // the assignment's ARM ID
	PrincipalID string // object id of the user or service principal
	RoleID      string // GUID of the role definition
	Scope       string // ARM ID of the scope, "/" for the root
}

// Request is what a caller asks Decide about.
type Request struct {
	PrincipalID string // object id of the caller
	Action      string // e.g. "Microsoft.Network/virtualNetworks/write"
	Scope       string // ARM ID the action is performed on, "/" for the root
}

// Decision is the answer of Decide.
type Decision struct {
	Allowed bool
	// By is the assignment that granted the action (the one nearest the requested scope
	// when several do); zero when not allowed.
	By Assignment
	// Role is the name of By's role.
	Role string
	// Reason says why the action was denied ("" when allowed).
	Reason string
}

// Decide reports whether req.PrincipalID may perform req.Action on req.Scope, given all role
// assignments and role definitions that might apply (others are ignored). An action is allowed
// when an assignment of the principal at the scope or an ancestor of it (inheritance down the
// scope tree) names a role that is assignable at the assignment's scope and one of whose
// permission blocks grants the action. Everything else is denied. Action names and scopes
// compare case-insensitively. Decide is pure and safe for concurrent use.
func Decide(req Request, assignments []Assignment, roles []Role) Decision {
	byID := make(map[string]*Role, len(roles))
	for i := range roles {
		byID[strings.ToLower(roles[i].ID)] = &roles[i]
	}
	var (
		best         Decision
		bestDepth    = -1
		held         int
		excludedBy   string
		unassignable string
	)
	for _, a := range assignments {
		if !strings.EqualFold(a.PrincipalID, req.PrincipalID) || !Covers(a.Scope, req.Scope) {
			continue
		}
		held++
		role := byID[strings.ToLower(a.RoleID)]
		if role == nil {
			continue // a dangling assignment grants nothing
		}
		if !AssignableAt(*role, a.Scope) {
			unassignable = role.Name
			continue
		}
		switch grants(*role, req.Action) {
		case granted:
			if d := depth(a.Scope); d > bestDepth {
				best, bestDepth = Decision{Allowed: true, By: a, Role: role.Name}, d
			}
		case excluded:
			excludedBy = role.Name
		}
	}
	if best.Allowed {
		return best
	}
	switch {
	case held == 0:
		return Decision{Reason: fmt.Sprintf("the principal has no role assignment at scope '%s' or above it", req.Scope)}
	case excludedBy != "":
		return Decision{Reason: fmt.Sprintf("action '%s' is excluded by the notActions of role '%s' and no other role assigned at or above scope '%s' grants it", req.Action, excludedBy, req.Scope)}
	case unassignable != "":
		return Decision{Reason: fmt.Sprintf("role '%s' is assigned outside its assignable scopes, and no other role assigned at or above scope '%s' grants action '%s'", unassignable, req.Scope, req.Action)}
	}
	return Decision{Reason: fmt.Sprintf("no role assigned to the principal at or above scope '%s' grants action '%s'", req.Scope, req.Action)}
}

type grant int

const (
	notGranted grant = iota
	granted
	excluded // matched an action, then a notAction of the same block
)

// grants reports whether some permission block of role grants action.
func grants(role Role, action string) grant {
	g := notGranted
	for _, p := range role.Permissions {
		if !matchesAny(p.Actions, action) {
			continue
		}
		if matchesAny(p.NotActions, action) {
			g = excluded
			continue
		}
		return granted
	}
	return g
}

func matchesAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if Match(p, action) {
			return true
		}
	}
	return false
}

// Match reports whether action matches pattern as Azure RBAC matches them: case-insensitive,
// and each '*' in pattern stands for any run of characters, '/' included ("*" matches every
// action, "*/read" every read, "Microsoft.Authorization/*/Write" every write below
// Microsoft.Authorization, "Microsoft.Network/privateDns*" the private DNS types).
func Match(pattern, action string) bool {
	return glob(strings.ToLower(pattern), strings.ToLower(action))
}

// glob matches s against p, where '*' matches any run of bytes.
func glob(p, s string) bool {
	// Iterative matching with one backtrack point, linear in practice.
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// Covers reports whether scope outer contains scope inner: they are equal or inner lies below
// outer, ignoring case and a trailing '/'. The root "/" (or "") covers every scope.
func Covers(outer, inner string) bool {
	o, i := normScope(outer), normScope(inner)
	return o == "" || o == i || strings.HasPrefix(i, o+"/")
}

// normScope lower-cases a scope and removes trailing slashes; the root becomes "".
func normScope(s string) string { return strings.TrimRight(strings.ToLower(s), "/") }

// depth is the number of segments of a scope: the root is 0.
func depth(scope string) int {
	s := normScope(scope)
	if s == "" {
		return 0
	}
	return strings.Count(s, "/")
}

// AssignableAt reports whether role may be assigned at scope: one of its assignable scopes is
// scope or an ancestor of it.
func AssignableAt(role Role, scope string) bool {
	for _, s := range role.AssignableScopes {
		if Covers(s, scope) {
			return true
		}
	}
	return false
}
