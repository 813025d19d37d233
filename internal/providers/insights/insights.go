// Package insights serves the activity log in the shape of Azure's Microsoft.Insights API:
//
//	GET /subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values
//	    ?api-version=2015-04-01&$filter=eventTimestamp ge '…' [and eventTimestamp le '…']
//	    [and resourceGroupName eq '…'] [and resourceUri eq '…' | resourceId eq '…']
//	    [and caller eq '…'] [and correlationId eq '…'] [and resourceProvider eq '…'] [and status eq '…']
//	    [&$select=field,…][&$skipToken=…]
//
// Events come newest first, one page at a time with a nextLink. Every filter is applied by the
// store (with indexes), so a recent event is found however many older ones there are.
package insights

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// APIVersions are the activity log api-versions served.
var APIVersions = []string{"2015-04-01", "2017-03-01-preview"}

// Type returns the activity log resource type for the front door.
func Type(st store.Store) arm.Type {
	return arm.Type{Name: "Microsoft.Insights/eventtypes/values", APIVersions: APIVersions,
		Handler:     func(ctx context.Context, req *arm.Request) (*arm.Response, error) { return serve(ctx, st, req) },
		NarrowScope: filterScope}
}

// filterScope is the scope a request's $filter confines it to: the resource of resourceUri or
// resourceId, if it lies in the subscription, else the group of resourceGroupName, else none.
// A caller who may read the activity log there, and not at the subscription (a Reader of one
// resource group), sees its events, as in Azure.
func filterScope(req *arm.Request) string {
	sub := "/subscriptions/" + req.Target.ID.Subscription
	q, err := parseFilter(strings.ToLower(req.Target.ID.Subscription), req.Query.Get("$filter"))
	switch {
	case err != nil:
		return ""
	case q.ResourceID != "" && len(q.ResourceID) > len(sub) && strings.EqualFold(q.ResourceID[:len(sub)+1], sub+"/"):
		return q.ResourceID
	case q.ResourceGroup != "" && !strings.Contains(q.ResourceGroup, "/"):
		return sub + "/resourceGroups/" + q.ResourceGroup
	}
	return ""
}

var (
	andRE = regexp.MustCompile(`(?i)\s+and\s+`)
	// clauseRE matches "field op 'value'" or "field op value" (az sends timestamps unquoted).
	clauseRE = regexp.MustCompile(`(?i)^\s*(\w+)\s+(\w+)\s+(?:'([^']*)'|([^\s']+))\s*$`)
)

// timeLayouts are the eventTimestamp forms accepted: RFC 3339, and the ISO 8601 forms Python's
// isoformat() gives (az sends those), read as UTC when they carry no offset.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02T15:04:05.999999999-07",
	"2006-01-02",
}

func badFilter(format string, args ...any) error {
	return resource.Errorf(resource.Invalid, "BadRequest", format, args...)
}

// parseFilter turns $filter into a store query for subscription.
func parseFilter(subscription, f string) (store.EventQuery, error) {
	q := store.EventQuery{Subscription: subscription}
	if strings.TrimSpace(f) == "" {
		return q, badFilter("The $filter query parameter is required, e.g. $filter=eventTimestamp ge '2026-01-01T00:00:00Z'.")
	}
	seen := map[string]bool{}
	for _, c := range andRE.Split(strings.TrimSpace(f), -1) {
		m := clauseRE.FindStringSubmatch(c)
		if m == nil {
			return q, badFilter("Unsupported $filter clause %q: use clauses of the form field eq 'value' joined by 'and'.", strings.TrimSpace(c))
		}
		field, op, val := strings.ToLower(m[1]), strings.ToLower(m[2]), m[3]+m[4]
		key := field + " " + op
		if seen[key] {
			return q, badFilter("The $filter has %s %s more than once.", m[1], m[2])
		}
		seen[key] = true
		if field == "eventtimestamp" {
			if op != "ge" && op != "le" {
				return q, badFilter("Unsupported operator %q for eventTimestamp: use ge and le.", m[2])
			}
			t, err := parseTime(val)
			if err != nil {
				return q, err
			}
			if op == "ge" {
				q.Since = t
			} else {
				q.Until = t
			}
			continue
		}
		if op != "eq" {
			return q, badFilter("Unsupported operator %q for %s: only eventTimestamp takes ge and le; other fields take eq.", m[2], m[1])
		}
		if val == "" {
			return q, badFilter("The value of %s in $filter is empty.", m[1])
		}
		switch field {
		case "resourcegroupname":
			q.ResourceGroup = val
		case "resourceuri", "resourceid":
			if q.ResourceID != "" {
				return q, badFilter("The $filter may name one resource, with resourceUri or resourceId, not both.")
			}
			// resourceUri selects the resource and the resources below it (a server's filter
			// finds its connections' approvals); resourceId selects that resource only.
			q.ResourceID, q.Subtree = val, field == "resourceuri"
		case "caller":
			q.Caller = val
		case "correlationid":
			q.CorrelationID = val
		case "resourceprovider":
			q.Provider = val
		case "status":
			q.Status = val
		default:
			return q, badFilter("Unsupported $filter field %q. Supported: eventTimestamp (ge, le), resourceGroupName, resourceUri, resourceId, caller, correlationId, resourceProvider, status (eq).", m[1])
		}
	}
	if q.Since.IsZero() {
		return q, badFilter("The $filter must include eventTimestamp ge '<time>', e.g. eventTimestamp ge '2026-01-01T00:00:00Z'.")
	}
	if !q.Until.IsZero() && q.Until.Before(q.Since) {
		return q, badFilter("The $filter's eventTimestamp le is before its eventTimestamp ge.")
	}
	return q, nil
}

func parseTime(v string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badFilter("Invalid eventTimestamp %q: use ISO 8601 / RFC 3339, e.g. 2026-01-01T00:00:00Z.", v)
}

// fields are the top-level names of an event, by lower-cased name, for $select.
var fields = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{"authorization", "caller", "channels", "claims", "correlationId", "description",
		"eventDataId", "eventName", "category", "eventTimestamp", "id", "level", "operationId", "operationName",
		"resourceGroupName", "resourceProviderName", "resourceType", "resourceId", "status", "subStatus",
		"submissionTimestamp", "subscriptionId", "tenantId", "properties", "httpRequest"} {
		m[strings.ToLower(f)] = f
	}
	return m
}()

// parseSelect returns the fields $select names (nil for all).
func parseSelect(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, ok := fields[strings.ToLower(f)]
		if !ok {
			return nil, badFilter("Unknown field %q in $select.", f)
		}
		out = append(out, name)
	}
	return out, nil
}

// project keeps only the selected top-level fields of an event.
func project(body []byte, sel []string) (json.RawMessage, error) {
	if sel == nil {
		return body, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, f := range sel {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return json.Marshal(out)
}

// skipToken encodes the paging cursor; it is opaque to clients.
func skipToken(before int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("before:" + strconv.FormatInt(before, 10)))
}

func parseSkipToken(tok string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), "before:"); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, resource.Errorf(resource.Invalid, "InvalidSkipToken", "The $skipToken is invalid: use the nextLink of the previous page as it is.")
}

func serve(ctx context.Context, st store.Store, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet || !req.Target.Collection || !strings.EqualFold(req.Target.ID.Name(), "management") {
		return nil, arm.MethodNotAllowed(req)
	}
	q, err := parseFilter(strings.ToLower(req.Target.ID.Subscription), req.Query.Get("$filter"))
	if err != nil {
		return nil, err
	}
	sel, err := parseSelect(req.Query.Get("$select"))
	if err != nil {
		return nil, err
	}
	if tok := req.Query.Get("$skipToken"); tok != "" {
		if q.Before, err = parseSkipToken(tok); err != nil {
			return nil, err
		}
	}
	size := req.PageSize()
	q.Limit = size + 1
	evs, err := st.Events(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list activity log events: %w", err)
	}
	list := arm.List{Value: []any{}}
	if len(evs) > size {
		evs = evs[:size]
		list.NextLink = req.NextLink(skipToken(evs[len(evs)-1].Seq))
	}
	for _, e := range evs {
		v, err := project(e.Body, sel)
		if err != nil {
			return nil, fmt.Errorf("select fields of event %d: %w", e.Seq, err)
		}
		list.Value = append(list.Value, v)
	}
	return &arm.Response{Body: list}, nil
}
