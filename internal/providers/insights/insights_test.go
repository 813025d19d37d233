package insights

import (
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

func TestParseFilter(t *testing.T) {
	since := time.Date(2026, 11, 30, 7, 1, 11, 123456000, time.UTC)
	until := time.Date(2026, 11, 30, 13, 1, 11, 0, time.UTC)
	const srv = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1"
	tests := []struct {
		filter string
		want   store.EventQuery
	}{
		{"eventTimestamp ge '2026-11-30T07:01:11.123456Z'", store.EventQuery{Since: since}},
		// az sends Python isoformat() times, unquoted and without a zone.
		{"eventTimestamp ge 2026-11-30T07:01:11.123456 and eventTimestamp le 2026-11-30T13:01:11",
			store.EventQuery{Since: since, Until: until}},
		{"eventTimestamp ge '2026-11-30T08:01:11.123456+01:00' AND eventTimestamp le '2026-11-30T13:01:11Z'",
			store.EventQuery{Since: since, Until: until}},
		{"eventTimestamp ge '2026-11-30T07:01:11.123456Z' and resourceUri eq '" + srv + "'",
			store.EventQuery{Since: since, ResourceID: srv, Subtree: true}},
		{"eventTimestamp ge '2026-11-30T07:01:11.123456Z' and resourceId eq '" + srv + "'",
			store.EventQuery{Since: since, ResourceID: srv}},
		{"eventTimestamp ge '2026-11-30T07:01:11.123456Z' and resourceGroupName eq 'RG' and caller eq 'a@example.com' and status eq 'Failed'",
			store.EventQuery{Since: since, ResourceGroup: "RG", Caller: "a@example.com", Status: "Failed"}},
		{"eventTimestamp ge '2026-11-30T07:01:11.123456Z' and correlationId eq 'c-1' and resourceProvider eq 'Microsoft.Network'",
			store.EventQuery{Since: since, CorrelationID: "c-1", Provider: "Microsoft.Network"}},
	}
	for _, tt := range tests {
		got, err := parseFilter("s1", tt.filter)
		tt.want.Subscription = "s1"
		if err != nil || got != tt.want {
			t.Errorf("parseFilter(%q) = %+v, %v; want %+v", tt.filter, got, err, tt.want)
		}
	}
}

func TestParseFilterErrors(t *testing.T) {
	const ge = "eventTimestamp ge '2026-01-01T00:00:00Z'"
	tests := []struct{ filter, want string }{
		{"", "required"},
		{"resourceGroupName eq 'rg'", "eventTimestamp ge"},
		{"eventTimestamp ge 'yesterday'", "Invalid eventTimestamp"},
		{"eventTimestamp eq '2026-01-01T00:00:00Z'", "ge and le"},
		{ge + " and eventTimestamp le '2025-01-01T00:00:00Z'", "before"},
		{ge + " and eventTimestamp ge '2026-01-02T00:00:00Z'", "more than once"},
		{ge + " and level eq 'Error'", "Unsupported $filter field \"level\""},
		{ge + " and caller ne 'x'", "Unsupported operator"},
		{ge + " or caller eq 'x'", "Unsupported $filter clause"},
		{ge + " and caller eq ''", "empty"},
		{ge + " and resourceUri eq '/a' and resourceId eq '/b'", "not both"},
	}
	for _, tt := range tests {
		_, err := parseFilter("s1", tt.filter)
		e, ok := resource.AsError(err)
		if !ok || e.Kind != resource.Invalid || !strings.Contains(e.Message, tt.want) {
			t.Errorf("parseFilter(%q) = %v; want a 400 saying %q", tt.filter, err, tt.want)
		}
	}
}

func TestSkipToken(t *testing.T) {
	if got, err := parseSkipToken(skipToken(1234)); err != nil || got != 1234 {
		t.Errorf("parseSkipToken(skipToken(1234)) = %d, %v; want 1234, nil", got, err)
	}
	for _, bad := range []string{"1234", "!!", skipToken(0), "YmVmb3JlOg"} {
		if _, err := parseSkipToken(bad); resource.KindOf(err) != resource.Invalid {
			t.Errorf("parseSkipToken(%q) = %v; want a 400", bad, err)
		}
	}
}

func TestSelect(t *testing.T) {
	sel, err := parseSelect("caller , EventTimestamp,description")
	if err != nil {
		t.Fatal(err)
	}
	got, err := project([]byte(`{"caller":"a","eventTimestamp":"t","level":"Error","description":"d"}`), sel)
	if want := `{"caller":"a","description":"d","eventTimestamp":"t"}`; err != nil || string(got) != want {
		t.Errorf("project = %s, %v; want %s", got, err, want)
	}
	if _, err := parseSelect("caller,nonsense"); resource.KindOf(err) != resource.Invalid {
		t.Errorf("parseSelect(nonsense) = %v; want a 400", err)
	}
}
