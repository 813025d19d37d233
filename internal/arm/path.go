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
