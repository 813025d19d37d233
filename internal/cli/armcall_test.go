package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFlatten(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"id":"x","name":"n","properties":{"state":"Ready","network":{"publicNetworkAccess":"Enabled"}}}`,
			`{"id":"x","name":"n","state":"Ready","network":{"publicNetworkAccess":"Enabled"}}`},
		// nested resources (a virtual network's subnets) are flattened too
		{`{"name":"v","properties":{"subnets":[{"name":"pe","properties":{"addressPrefix":"10.0.1.0/24"}}]}}`,
			`{"name":"v","subnets":[{"name":"pe","addressPrefix":"10.0.1.0/24"}]}`},
		// a top-level field wins over a property of the same name
		{`{"name":"top","properties":{"name":"inner"}}`, `{"name":"top"}`},
		{`{"name":"n"}`, `{"name":"n"}`},
	}
	for _, tt := range tests {
		if got, want := flatten(decode(t, tt.in)), decode(t, tt.want); !reflect.DeepEqual(got, want) {
			t.Errorf("flatten(%s) = %v; want %v", tt.in, got, want)
		}
	}
}

func TestField(t *testing.T) {
	raw := decode(t, `{"name":"c","properties":{"privateLinkServiceConnectionState":{"status":"Pending"},"privateEndpoint":{"id":"/a/b/pe1"}}}`)
	flat := flatten(raw)
	for _, m := range []map[string]any{raw, flat} {
		if got := str(m, "privateLinkServiceConnectionState.status"); got != "Pending" {
			t.Errorf("str(%v, status) = %q; want Pending", m, got)
		}
		if got := lastSegment(str(m, "privateEndpoint.id")); got != "pe1" {
			t.Errorf("private endpoint of %v = %q; want pe1", m, got)
		}
		if got := field(m, "no.such"); got != nil {
			t.Errorf("field(no.such) = %v; want nil", got)
		}
	}
}

func TestShown(t *testing.T) {
	notFound := &azcore.ResponseError{StatusCode: http.StatusNotFound, ErrorCode: "ResourceNotFound"}
	conflict := &azcore.ResponseError{StatusCode: http.StatusConflict, ErrorCode: "ServerIsNotReady"}
	if err := shown(notFound); !errors.As(err, new(missingError)) {
		t.Errorf("shown(404) = %v; want a missingError (exit 3)", err)
	}
	if err := shown(conflict); errors.As(err, new(missingError)) {
		t.Errorf("shown(409) = %v; want it as it is", err)
	}
	e := &env{stderr: &bytes.Buffer{}}
	if code := e.exit(nil, failure{missingError{notFound}}); code != 3 {
		t.Errorf("exit(missing) = %d; want 3", code)
	}
}

func TestParseConnID(t *testing.T) {
	srv := "/subscriptions/s1/resourceGroups/db-rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/orders-db"
	tests := []struct {
		id       string
		needName bool
		want     connRef
		bad      bool
	}{
		{srv + "/privateEndpointConnections/app-pe.1", true, connRef{"s1", "db-rg", "orders-db", "app-pe.1"}, false},
		{strings.ToLower(srv) + "/privateEndpointConnections/app-pe.1", true, connRef{"s1", "db-rg", "orders-db", "app-pe.1"}, false},
		{srv, false, connRef{"s1", "db-rg", "orders-db", ""}, false},
		{srv, true, connRef{}, true},
		{"/subscriptions/s1/resourceGroups/g/providers/Microsoft.Sql/servers/x/privateEndpointConnections/c", true, connRef{}, true},
		{"/subscriptions/s1/resourceGroups/g/providers/Microsoft.Sql/servers/x", false, connRef{}, true},
		{"not-an-id", false, connRef{}, true},
	}
	for _, tt := range tests {
		got, err := parseConnID(tt.id, tt.needName)
		if tt.bad {
			if !errors.As(err, new(usageError)) {
				t.Errorf("parseConnID(%q, %v) = %v, %v; want a usage error", tt.id, tt.needName, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseConnID(%q, %v) = %+v, %v; want %+v", tt.id, tt.needName, got, err, tt.want)
		}
	}
}

func TestConnFlagsRef(t *testing.T) {
	tests := []struct {
		f        connFlags
		needName bool
		want     connRef
		err      string
	}{
		{connFlags{style: netStyle, group: "g", server: "s", name: "c", typ: "microsoft.dbforpostgresql/flexibleservers"}, true, connRef{"sub", "g", "s", "c"}, ""},
		{connFlags{style: netStyle, group: "g", server: "s", name: "c", typ: "Microsoft.Sql/servers"}, true, connRef{},
			"'Microsoft.Sql/servers' is not a valid value for '--type'. Supported values: Microsoft.DBforPostgreSQL/flexibleServers"},
		{connFlags{style: netStyle, group: "g", server: "s", name: "c"}, true, connRef{}, "give --id, or --resource-group, --resource-name, --type and --name"},
		{connFlags{style: netStyle, group: "g", server: "s"}, false, connRef{}, "give --id, or --resource-group, --name, --type"},
		{connFlags{style: pgStyle, group: "g", server: "s", name: "c"}, true, connRef{"sub", "g", "s", "c"}, ""},
		{connFlags{style: pgStyle, group: "g"}, false, connRef{}, "give --id, or --resource-group, --server-name"},
		{connFlags{style: pgStyle, id: "/subscriptions/s2/resourceGroups/g2/providers/Microsoft.DBforPostgreSQL/flexibleServers/s/privateEndpointConnections/c"},
			true, connRef{"s2", "g2", "s", "c"}, ""},
	}
	for _, tt := range tests {
		e := &env{stderr: &bytes.Buffer{}}
		got, err := tt.f.ref(e, "sub", tt.needName)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, new(usageError)) {
				t.Errorf("%+v.ref = %v; want the usage error %q", tt.f, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v.ref = %+v, %v; want %+v", tt.f, got, err, tt.want)
		}
	}
}

func TestConnTable(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, output: "table"}
	conns := []map[string]any{
		decode(t, `{"id":"/subscriptions/s/resourceGroups/db-rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/db/privateEndpointConnections/app-pe.1","name":"app-pe.1",
			"properties":{"privateEndpoint":{"id":"/subscriptions/s/resourceGroups/net-rg/providers/Microsoft.Network/privateEndpoints/app-pe"},
			"privateLinkServiceConnectionState":{"status":"Approved","description":"by the DBA team"},"provisioningState":"Succeeded"}}`),
		flatten(decode(t, `{"name":"b.2","properties":{"privateEndpoint":{"id":"/x/privateEndpoints/b"},
			"privateLinkServiceConnectionState":{"status":"Pending","description":""},"provisioningState":"Succeeded"}}`)),
	}
	if err := e.printTable(conns, connTable); err != nil {
		t.Fatal(err)
	}
	want := `Name      Status    Description      PrivateEndpoint  ProvisioningState
--------  --------  ---------------  ---------------  -----------------
app-pe.1  Approved  by the DBA team  app-pe           Succeeded
b.2       Pending                    b                Succeeded
`
	if out.String() != want {
		t.Errorf("connections -o table =\n%s\nwant\n%s", out.String(), want)
	}
}

func TestParseOffset(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"6h", 6 * time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"2d12h", 60 * time.Hour, false},
		{"30m", 30 * time.Minute, false},
		{"", 0, true},
		{"soon", 0, true},
		{"-1h", 0, true},
	}
	for _, tt := range tests {
		got, err := parseOffset(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseOffset(%q) = %v, %v; want %v (error: %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestTimeRangeAndFilter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		start, end string
		from, to   time.Time
	}{
		{"", "", now.Add(-6 * time.Hour), now},
		{"2026-02-01T00:00:00Z", "", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 6, 0, 0, 0, time.UTC)},
		{"", "2026-02-01", time.Date(2026, 1, 31, 18, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-02-01T00:00:00", "2026-02-03T00:00:00+01:00", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 2, 23, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		from, to, err := timeRange(now, tt.start, tt.end, 6*time.Hour)
		if err != nil || !from.Equal(tt.from) || !to.Equal(tt.to) {
			t.Errorf("timeRange(%q, %q) = %v, %v, %v; want %v, %v", tt.start, tt.end, from, to, err, tt.from, tt.to)
		}
	}
	if _, _, err := timeRange(now, "yesterday", "", time.Hour); !errors.As(err, new(usageError)) {
		t.Errorf("timeRange(yesterday) = %v; want a usage error", err)
	}
	f := activityFilter{from: now.Add(-time.Hour), to: now, group: "db-rg", caller: "o'brien@pglink.local", status: "Failed"}
	want := "eventTimestamp ge '2026-03-01T11:00:00Z' and eventTimestamp le '2026-03-01T12:00:00Z' and resourceGroupName eq 'db-rg' and caller eq 'o''brien@pglink.local' and status eq 'Failed'"
	if got := f.String(); got != want {
		t.Errorf("filter = %s; want %s", got, want)
	}
}

func TestConnectionStrings(t *testing.T) {
	cs := connectionStrings("127.0.0.5", "6432", "pgadmin", "p@ss", "orders")
	if got, want := cs["psql_cmd"], `psql "host=127.0.0.5 port=6432 dbname=orders user=pgadmin password=p@ss sslmode=require"`; got != want {
		t.Errorf("psql_cmd = %s; want %s", got, want)
	}
	if got, want := cs["uri"], "postgresql://pgadmin:p%40ss@127.0.0.5:6432/orders?sslmode=require"; got != want {
		t.Errorf("uri = %s; want %s", got, want)
	}
}

func TestPublicAccess(t *testing.T) {
	for _, in := range []string{"Enabled", "disabled"} {
		if got, err := publicAccess(in); err != nil || !strings.EqualFold(string(*got), in) {
			t.Errorf("publicAccess(%q) = %v, %v", in, got, err)
		}
	}
	if got, err := publicAccess(""); got != nil || err != nil {
		t.Errorf("publicAccess(\"\") = %v, %v; want nil, nil", got, err)
	}
	if _, err := publicAccess("Sometimes"); !errors.As(err, new(usageError)) {
		t.Errorf("publicAccess(Sometimes) = %v; want a usage error", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the spinner's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSpinner(t *testing.T) {
	var w syncBuffer
	stop := spinner(&w, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	stop()
	got := w.String()
	if !strings.Contains(got, "\r| Running ..") || !strings.Contains(got, "\r/ Running ..") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("spinner wrote %q; want frames, then the line erased", got)
	}
	after := w.String()
	time.Sleep(5 * time.Millisecond)
	if w.String() != after {
		t.Error("spinner wrote after stop returned")
	}
	// Not a terminal: no spinner at all.
	var buf bytes.Buffer
	(&env{stderr: &buf}).spin()()
	if buf.Len() != 0 {
		t.Errorf("spin on a buffer wrote %q; want nothing", buf.String())
	}
}

func TestUsageErrorsOfNewCommands(t *testing.T) {
	t.Setenv("PGLINK_CONFIG_DIR", t.TempDir())
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"network", "private-endpoint-connection", "approve", "--resource-group", "g", "--resource-name", "s", "--type", flexibleServerType, "--name", "c"}, 2, `required flag(s) "description" not set`},
		{[]string{"postgres", "flexible-server", "private-endpoint-connection", "reject", "-g", "g", "-s", "s", "-n", "c"}, 2, `required flag(s) "description" not set`},
		{[]string{"network", "private-endpoint-connection", "list", "-g", "g", "-n", "s", "--type", flexibleServerType, "--status", "Gone"}, 2, "argument --status: invalid choice"},
		{[]string{"postgres", "flexible-server", "update", "-g", "g", "-n", "s"}, 2, "give at least one of --public-access, --tags, --admin-password"},
		{[]string{"monitor", "activity-log", "list", "--offset", "soon"}, 2, "argument --offset"},
		{[]string{"completion", "tcsh"}, 2, "choose from bash, zsh, fish"},
		{[]string{"network", "private-endpoint-connection", "show", "--id", "x"}, 1, "please run 'pglink login'"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}

func TestPlanState(t *testing.T) {
	tests := []struct {
		cur, curDesc, status, desc string
		would                      bool
		note                       string
	}{
		{"Pending", "for the app", "Approved", "ok", true, ""},
		{"Pending", "", "Rejected", "no", true, ""},
		{"Approved", "ok", "Rejected", "no", true, ""},
		{"Approved", "ok", "Approved", "ok", false, "already so"},
		{"Approved", "ok", "Approved", "still ok", true, "the description only"},
		{"Rejected", "no", "Approved", "ok", false, "refused: a rejected connection cannot be approved"},
		{"Disconnected", "", "Approved", "ok", false, "refused: a connection cannot change from Disconnected to Approved"},
	}
	for _, tt := range tests {
		p := planState("c", tt.cur, tt.curDesc, tt.status, tt.desc)
		if p.WouldChange != tt.would || !strings.HasPrefix(p.Note, tt.note) || p.Current != tt.cur || p.New != tt.status {
			t.Errorf("planState(%s %q -> %s %q) = %+v; want wouldChange %v, note %q", tt.cur, tt.curDesc, tt.status, tt.desc, p, tt.would, tt.note)
		}
	}
}
