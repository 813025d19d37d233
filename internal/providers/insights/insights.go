// Package insights serves the activity log in the shape of Azure's Microsoft.Insights API:
// GET /subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values
// ?api-version=2015-04-01&$filter=eventTimestamp ge '…' [and eventTimestamp le '…']
// [and resourceGroupName eq '…' | resourceUri eq '…' | correlationId eq '…'].
package insights

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/activity"
	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// APIVersions are the activity log api-versions served.
var APIVersions = []string{"2015-04-01", "2017-03-01-preview"}

// maxEvents caps one answer.
const maxEvents = 5000

// Type returns the activity log resource type for the front door.
func Type(st store.Store) arm.Type {
	return arm.Type{Name: "Microsoft.Insights/eventtypes/values", APIVersions: APIVersions,
		Handler: func(ctx context.Context, req *arm.Request) (*arm.Response, error) { return serve(ctx, st, req) }}
}

var clauseRE = regexp.MustCompile(`(?i)^\s*(\w+)\s+(ge|le|eq)\s+'([^']*)'\s*$`)

type filter struct {
	since, until time.Time
	eq           map[string]string // lower-cased field -> lower-cased value
}

func parseFilter(f string) (filter, error) {
	out := filter{eq: map[string]string{}}
	if strings.TrimSpace(f) == "" {
		return out, resource.Errorf(resource.Invalid, "BadRequest",
			"The $filter query parameter is required, e.g. $filter=eventTimestamp ge '2026-01-01T00:00:00Z'.")
	}
	for _, c := range regexp.MustCompile(`(?i)\s+and\s+`).Split(f, -1) {
		m := clauseRE.FindStringSubmatch(c)
		if m == nil {
			return out, resource.Errorf(resource.Invalid, "BadRequest", "Unsupported $filter clause %q.", strings.TrimSpace(c))
		}
		field, op, val := strings.ToLower(m[1]), strings.ToLower(m[2]), m[3]
		switch {
		case field == "eventtimestamp" && (op == "ge" || op == "le"):
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return out, resource.Errorf(resource.Invalid, "BadRequest", "Invalid eventTimestamp %q: use RFC 3339, e.g. 2026-01-01T00:00:00Z.", val)
			}
			if op == "ge" {
				out.since = t
			} else {
				out.until = t
			}
		case op == "eq" && (field == "resourcegroupname" || field == "resourceuri" || field == "resourceid" || field == "correlationid" || field == "caller" || field == "resourceprovider"):
			out.eq[field] = strings.ToLower(val)
		default:
			return out, resource.Errorf(resource.Invalid, "BadRequest", "Unsupported $filter clause %q.", strings.TrimSpace(c))
		}
	}
	if out.since.IsZero() {
		return out, resource.Errorf(resource.Invalid, "BadRequest", "The $filter must include eventTimestamp ge '<time>'.")
	}
	return out, nil
}

func (f filter) match(e activity.Event) bool {
	if !f.until.IsZero() && e.EventTimestamp.After(f.until) {
		return false
	}
	for k, v := range f.eq {
		var got string
		switch k {
		case "resourcegroupname":
			got = e.ResourceGroupName
		case "resourceuri", "resourceid":
			got = e.ResourceID
		case "correlationid":
			got = e.CorrelationID
		case "caller":
			got = e.Caller
		case "resourceprovider":
			got = e.ResourceProviderName.Value
		}
		if strings.ToLower(got) != v {
			return false
		}
	}
	return true
}

func serve(ctx context.Context, st store.Store, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet || !req.Target.Collection || !strings.EqualFold(req.Target.ID.Name(), "management") {
		return nil, arm.MethodNotAllowed(req)
	}
	f, err := parseFilter(req.Query.Get("$filter"))
	if err != nil {
		return nil, err
	}
	evs, err := st.Events(ctx, strings.ToLower(req.Target.ID.Subscription), f.since, maxEvents)
	if err != nil {
		return nil, err
	}
	list := arm.List{Value: []any{}}
	for i := len(evs) - 1; i >= 0; i-- { // newest first, as Azure
		var e activity.Event
		if err := json.Unmarshal(evs[i].Body, &e); err != nil {
			continue
		}
		if f.match(e) {
			list.Value = append(list.Value, json.RawMessage(evs[i].Body))
		}
	}
	return &arm.Response{Body: list}, nil
}
