package authorization

import (
	"regexp"
	"strings"

	"github.com/pglink/pglink/internal/resource"
)

// filter is a parsed $filter of a role assignment or role definition list, as az and
// armauthorization send them: clauses joined by "and".
type filter struct {
	AtScope         bool   // atScope(): only assignments at the scope or above it
	AtScopeAndBelow bool   // atScopeAndBelow(): role definitions assignable at or below the scope
	PrincipalID     string // principalId eq '…' or assignedTo('…')
	RoleName        string // roleName eq '…'
	RoleType        string // type eq 'BuiltInRole' | 'CustomRole'
}

var (
	andRE    = regexp.MustCompile(`(?i)\s+and\s+`)
	eqRE     = regexp.MustCompile(`(?i)^(principalId|roleName|type)\s+eq\s+'((?:[^']|'')*)'$`)
	callRE   = regexp.MustCompile(`(?i)^(atScope|atScopeAndBelow)\(\s*\)$`)
	assignRE = regexp.MustCompile(`(?i)^assignedTo\(\s*'([^']*)'\s*\)$`)
)

// parseFilter parses s; the empty filter selects everything. It fails with 400 for a clause
// it does not know.
func parseFilter(s string) (filter, error) {
	var f filter
	s = strings.TrimSpace(s)
	if s == "" {
		return f, nil
	}
	for _, c := range andRE.Split(s, -1) {
		c = strings.TrimSpace(c)
		if m := callRE.FindStringSubmatch(c); m != nil {
			if strings.EqualFold(m[1], "atScope") {
				f.AtScope = true
			} else {
				f.AtScopeAndBelow = true
			}
			continue
		}
		if m := assignRE.FindStringSubmatch(c); m != nil {
			f.PrincipalID = m[1]
			continue
		}
		if m := eqRE.FindStringSubmatch(c); m != nil {
			v := strings.ReplaceAll(m[2], "''", "'")
			switch strings.ToLower(m[1]) {
			case "principalid":
				f.PrincipalID = v
			case "rolename":
				f.RoleName = v
			case "type":
				f.RoleType = v
			}
			continue
		}
		return f, resource.Errorf(resource.Invalid, "InvalidFilter",
			"The $filter clause '%s' is not supported. Use atScope(), atScopeAndBelow(), principalId eq '{id}', assignedTo('{id}'), roleName eq '{name}' or type eq 'BuiltInRole|CustomRole', joined by 'and'.", c)
	}
	return f, nil
}
