// Package resource holds pglink's domain: Azure Resource Manager IDs and scopes, resource
// types, the states a resource moves through and the legal transitions between them, and the
// small set of error kinds every layer speaks. It imports only the standard library.
package resource

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// ID is a parsed Azure Resource Manager resource ID. The zero ID is the root scope "/".
//
// Forms:
//
//	/subscriptions/{sub}
//	/subscriptions/{sub}/resourceGroups/{rg}
//	/subscriptions/{sub}[/resourceGroups/{rg}]/providers/{ns}/{type}/{name}[/{type}/{name}...]
//
// Names keep the casing they were given; Key compares IDs case-insensitively.
type ID struct {
	Subscription  string
	ResourceGroup string
	Namespace     string   // resource provider namespace, e.g. "Microsoft.DBforPostgreSQL"
	Types         []string // nested type segments, e.g. ["flexibleServers", "firewallRules"]
	Names         []string // one name for each type segment
}

// Parse parses an ARM resource ID. It accepts any casing of the fixed segments
// ("resourcegroups", "PROVIDERS") and rejects empty segments and unpaired type segments.
func Parse(s string) (ID, error) {
	var id ID
	if s == "" || s == "/" {
		return id, nil
	}
	if !strings.HasPrefix(s, "/") {
		return id, fmt.Errorf("resource id %q does not start with '/'", s)
	}
	seg := strings.Split(strings.TrimSuffix(s[1:], "/"), "/")
	for _, p := range seg {
		if p == "" {
			return id, fmt.Errorf("resource id %q has an empty segment", s)
		}
	}
	i := 0
	next := func() (string, bool) {
		if i >= len(seg) {
			return "", false
		}
		i++
		return seg[i-1], true
	}
	if k, _ := next(); !strings.EqualFold(k, "subscriptions") {
		return id, fmt.Errorf("resource id %q does not start with /subscriptions", s)
	}
	var ok bool
	if id.Subscription, ok = next(); !ok {
		return id, fmt.Errorf("resource id %q has no subscription", s)
	}
	k, ok := next()
	if !ok {
		return id, nil
	}
	if strings.EqualFold(k, "resourceGroups") {
		if id.ResourceGroup, ok = next(); !ok {
			return id, fmt.Errorf("resource id %q has no resource group name", s)
		}
		if k, ok = next(); !ok {
			return id, nil
		}
	}
	if !strings.EqualFold(k, "providers") {
		return id, fmt.Errorf("resource id %q: unexpected segment %q", s, k)
	}
	if id.Namespace, ok = next(); !ok {
		return id, fmt.Errorf("resource id %q has no provider namespace", s)
	}
	rest := seg[i:]
	if len(rest) == 0 || len(rest)%2 != 0 {
		return id, fmt.Errorf("resource id %q does not name a resource", s)
	}
	for j := 0; j < len(rest); j += 2 {
		id.Types = append(id.Types, rest[j])
		id.Names = append(id.Names, rest[j+1])
	}
	return id, nil
}

// MustParse is Parse for IDs known to be valid; it panics otherwise.
func MustParse(s string) ID {
	id, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the ID in its canonical form with the casing of its names.
func (id ID) String() string {
	if id.Subscription == "" {
		return "/"
	}
	var b strings.Builder
	b.WriteString("/subscriptions/")
	b.WriteString(id.Subscription)
	if id.ResourceGroup != "" {
		b.WriteString("/resourceGroups/")
		b.WriteString(id.ResourceGroup)
	}
	if id.Namespace != "" {
		b.WriteString("/providers/")
		b.WriteString(id.Namespace)
		for i := range id.Types {
			b.WriteString("/")
			b.WriteString(id.Types[i])
			b.WriteString("/")
			b.WriteString(id.Names[i])
		}
	}
	return b.String()
}

// Key is the lower-cased ID: the identity of a resource in the store and in comparisons.
func (id ID) Key() string { return strings.ToLower(id.String()) }

// Type is the full resource type, e.g. "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules",
// "Microsoft.Resources/resourceGroups" or "Microsoft.Resources/subscriptions".
func (id ID) Type() string {
	switch {
	case id.Namespace != "":
		return id.Namespace + "/" + strings.Join(id.Types, "/")
	case id.ResourceGroup != "":
		return "Microsoft.Resources/resourceGroups"
	case id.Subscription != "":
		return "Microsoft.Resources/subscriptions"
	}
	return ""
}

// Name is the last name of the ID: the resource's own name.
func (id ID) Name() string {
	switch {
	case len(id.Names) > 0:
		return id.Names[len(id.Names)-1]
	case id.ResourceGroup != "":
		return id.ResourceGroup
	}
	return id.Subscription
}

// IsResourceGroup reports whether the ID names a resource group.
func (id ID) IsResourceGroup() bool { return id.ResourceGroup != "" && id.Namespace == "" }

// Parent returns the scope that contains id: a parent resource, the resource group, the
// subscription, or the root.
func (id ID) Parent() ID {
	switch {
	case len(id.Names) > 1:
		p := id
		p.Types = id.Types[:len(id.Types)-1]
		p.Names = id.Names[:len(id.Names)-1]
		return p
	case id.Namespace != "":
		return ID{Subscription: id.Subscription, ResourceGroup: id.ResourceGroup}
	case id.ResourceGroup != "":
		return ID{Subscription: id.Subscription}
	}
	return ID{}
}

// Child returns the ID of a child resource of type typ (one segment, e.g. "firewallRules").
// On a subscription or resource group, typ must be "Namespace/type".
func (id ID) Child(typ, name string) ID {
	c := ID{Subscription: id.Subscription, ResourceGroup: id.ResourceGroup, Namespace: id.Namespace}
	c.Types = append(append([]string(nil), id.Types...), typ)
	c.Names = append(append([]string(nil), id.Names...), name)
	if id.Namespace == "" {
		ns, t, _ := strings.Cut(typ, "/")
		c.Namespace, c.Types = ns, []string{t}
	}
	return c
}

// ResourceGroupID returns the ID of the resource group that holds id (zero if none).
func (id ID) ResourceGroupID() ID {
	if id.ResourceGroup == "" {
		return ID{}
	}
	return ID{Subscription: id.Subscription, ResourceGroup: id.ResourceGroup}
}

// Within reports whether id equals scope or lies below it (case-insensitive).
func (id ID) Within(scope ID) bool {
	s := scope.Key()
	if s == "/" {
		return true
	}
	k := id.Key()
	return k == s || strings.HasPrefix(k, s+"/")
}

// TypeIs reports whether the ID's type equals typ, ignoring case.
func (id ID) TypeIs(typ string) bool { return strings.EqualFold(id.Type(), typ) }

// NewGUID returns a random (version 4) UUID in its canonical text form.
func NewGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
