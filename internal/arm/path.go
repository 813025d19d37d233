package arm

import (
	"strings"

	"github.com/pglink/pglink/internal/resource"
)

// Target is what an ARM request path addresses.
//
//	/subscriptions/s/resourceGroups/rg/providers/NS/flexibleServers/a        resource  (ID = …/a)
//	/subscriptions/s/resourceGroups/rg/providers/NS/flexibleServers          collection (Scope = rg)
//	/subscriptions/s/resourceGroups/rg/providers/NS/flexibleServers/a/rules  collection (Scope = …/a)
//	/subscriptions/s/resourceGroups/rg/providers/NS/flexibleServers/a/start  action (POST; Scope = …/a)
//	/subscriptions/s/resourcegroups                                          collection of resource groups
//	/subscriptions                                                           collection of subscriptions
//
// Extension resources hang off any scope, including the root and other resources:
//
//	/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x   resource (ID = …/x, an ordinary ID)
//	/providers/Microsoft.Authorization/roleAssignments/x                   extension (ID = root, Name = x)
//	/providers/Microsoft.Authorization/roleAssignments                     extension collection (ID = root)
//	…/flexibleServers/a/providers/Microsoft.Authorization/roleAssignments/x extension (ID = …/a, Name = x)
//
// At a subscription or resource group an extension resource is an ordinary ID (its Parent is
// the scope); at the root or below a resource it is an Extension target, whose ID is the
// scope, and which Addressed names.
type Target struct {
	// ID is the addressed resource, or for a collection or action the resource it hangs off
	// (the scope): a parent resource, a resource group or a subscription.
	ID resource.ID
	// Type is the full type of the addressed resource or of the collection's items. For an
	// action it is the type of ID.
	Type string
	// Last is the final path segment of a collection or action ("" for a resource).
	Last       string
	Collection bool
	// Extension is set for an extension resource or collection at the root or below a
	// resource: ID is then the scope, Type the extension type ("Microsoft.Authorization/roleAssignments")
	// and Name the resource's name ("" for the collection).
	Extension bool
	Name      string
}

// Parent returns the resource a child collection or a child resource hangs off: ID for a
// collection, ID's parent for a resource.
func (t Target) Parent() resource.ID {
	if t.Collection {
		return t.ID
	}
	return t.ID.Parent()
}

// Addressed returns the ARM ID of what the target addresses: the resource, or for a collection
// or action the scope it hangs off. An extension resource at the root is
// "/providers/{type}/{name}".
func (t Target) Addressed() string {
	if !t.Extension || t.Collection {
		return t.ID.String()
	}
	return ExtensionID(t.ID, t.Type, t.Name)
}

// ExtensionID returns the ARM ID of the extension resource of type typ ("Namespace/type") and
// name at scope: "{scope}/providers/{typ}/{name}", with no scope prefix at the root.
func ExtensionID(scope resource.ID, typ, name string) string {
	prefix := scope.String()
	if prefix == "/" {
		prefix = ""
	}
	return prefix + "/providers/" + typ + "/" + name
}

// parseExtension parses seg as an extension resource or collection at the root or below a
// resource: {scope}/providers/{ns}/{type}[/{name}]. ok is false if seg is not of that form.
func parseExtension(seg []string) (t Target, ok bool) {
	i := len(seg) - 3
	if i >= 0 && !strings.EqualFold(seg[i], "providers") {
		i--
	}
	if i < 0 || !strings.EqualFold(seg[i], "providers") {
		return t, false
	}
	var scope resource.ID
	if i > 0 {
		s, err := resource.Parse("/" + strings.Join(seg[:i], "/"))
		if err != nil || s.Namespace == "" {
			return t, false // the root-less forms are ordinary IDs and collections
		}
		scope = s
	}
	rest := seg[i+1:]
	t = Target{ID: scope, Type: rest[0] + "/" + rest[1], Extension: true}
	if len(rest) == 3 {
		t.Name = rest[2]
	} else {
		t.Last, t.Collection = rest[1], true
	}
	return t, true
}

// ParseTarget parses an ARM request path. ok is false if it is not an ARM path.
func ParseTarget(path string) (t Target, ok bool) {
	p := strings.Trim(path, "/")
	if p == "" {
		return t, false
	}
	seg := strings.Split(p, "/")
	for _, s := range seg {
		if s == "" {
			return t, false
		}
	}
	if t, ok := parseExtension(seg); ok {
		return t, true
	}
	if !strings.EqualFold(seg[0], "subscriptions") {
		return t, false
	}
	if id, err := resource.Parse(path); err == nil && (len(seg)%2 == 0 || len(seg) == 2) {
		return Target{ID: id, Type: id.Type()}, true
	}
	// A collection or an action: the last segment hangs off a shorter path.
	last := seg[len(seg)-1]
	head := seg[:len(seg)-1]
	switch {
	case len(head) == 0: // /subscriptions
		return Target{Type: resource.TypeSubscription, Last: last, Collection: true}, true
	case len(head) == 2 && strings.EqualFold(last, "resourceGroups"):
		return Target{ID: resource.ID{Subscription: head[1]}, Type: resource.TypeResourceGroup, Last: last, Collection: true}, true
	case len(head) >= 3 && strings.EqualFold(head[len(head)-2], "providers"):
		// …/providers/NS/type: a top-level collection at a subscription or resource group.
		scope, err := resource.Parse("/" + strings.Join(head[:len(head)-2], "/"))
		if err != nil || scope.Namespace != "" {
			return t, false
		}
		return Target{ID: scope, Type: head[len(head)-1] + "/" + last, Last: last, Collection: true}, true
	case len(head) == 3 && strings.EqualFold(head[2], "providers"):
		return t, false
	}
	scope, err := resource.Parse("/" + strings.Join(head, "/"))
	if err != nil || scope.Namespace == "" {
		return t, false
	}
	return Target{ID: scope, Type: scope.Type() + "/" + last, Last: last, Collection: true}, true
}

// ProviderNamespace returns the resource provider namespace of a path ending in
// /providers/{namespace}, for provider metadata requests, or "".
func ProviderNamespace(path string) (sub, ns string) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) == 4 && strings.EqualFold(seg[0], "subscriptions") && strings.EqualFold(seg[2], "providers") {
		return seg[1], seg[3]
	}
	return "", ""
}
