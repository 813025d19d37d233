package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/server"
)

// activityLog reads every page of the activity log with $filter f and returns the events.
func (in *instance) activityLog(t *testing.T, token, f string) []map[string]any {
	t.Helper()
	q := url.Values{"api-version": {"2015-04-01"}, "$filter": {f}}
	next := "/subscriptions/" + in.boot.SubscriptionID + "/providers/Microsoft.Insights/eventtypes/management/values?" + q.Encode()
	var out []map[string]any
	for next != "" {
		r := in.do(t, "GET", next, token, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("activity log %q: %d %s", f, r.status, r.raw)
		}
		for _, v := range r.body["value"].([]any) {
			out = append(out, v.(map[string]any))
		}
		next, _ = r.body["nextLink"].(string)
	}
	return out
}

// sendAndHangUp writes one HTTP request on a fresh TLS connection and closes the connection
// without reading the answer: a client that goes away right after sending a write.
func (in *instance) sendAndHangUp(t *testing.T, method, path, token, correlationID, body string) {
	t.Helper()
	pem, err := os.ReadFile(in.boot.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	addr := strings.TrimPrefix(in.boot.ARMEndpoint, "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"x-ms-correlation-request-id: %s\r\nContent-Length: %d\r\n\r\n%s", method, path, addr, token, correlationID, len(body), body)
	if err := w.Flush(); err != nil {
		t.Fatalf("send %s %s: %v", method, path, err)
	}
	conn.Close()
}

// TestAuditClientHangsUp: a client that closes its connection right after sending a write
// leaves exactly one activity log event for it, whether or not the write was made.
func TestAuditClientHangsUp(t *testing.T) {
	in := start(t, nil)
	tok := in.token()
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	sub := "/subscriptions/" + in.boot.SubscriptionID
	const n = 8
	ids := make([]string, n)
	for i := range n {
		ids[i] = resource.NewGUID()
		in.sendAndHangUp(t, "PUT", fmt.Sprintf("%s/resourcegroups/gone%d?api-version=2021-04-01", sub, i), tok, ids[i], `{"location":"eastus"}`)
	}
	for i, id := range ids {
		f := fmt.Sprintf("eventTimestamp ge '%s' and correlationId eq '%s'", since, id)
		deadline := time.Now().Add(30 * time.Second)
		var evs []map[string]any
		for len(evs) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			evs = in.activityLog(t, tok, f)
		}
		// The write is made or not; either way its event is there, and only one.
		r := in.do(t, "GET", fmt.Sprintf("%s/resourcegroups/gone%d?api-version=2021-04-01", sub, i), tok, nil, nil)
		evs = in.activityLog(t, tok, f)
		if len(evs) != 1 {
			t.Errorf("write %d (group %d): %d activity log events; want exactly 1: %v", i, r.status, len(evs), evs)
			continue
		}
		status := evs[0]["status"].(map[string]any)["value"]
		if (r.status == http.StatusOK) != (status == "Succeeded") {
			t.Errorf("write %d: group GET %d, event status %v; want Succeeded exactly when the group exists", i, r.status, status)
		}
	}
}

// TestActivityLogFilterAndPaging: the activity log is newest first, filtered by resource,
// resource group and caller in the store, and paged with nextLink; a recent approval is found
// behind many older events.
func TestActivityLogFilterAndPaging(t *testing.T) {
	in := start(t, func(c *server.Config) { c.PageSize = 5 })
	c := newClients(t, in)
	ctx := ctxT(t)
	tok := in.token()
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	c.group(t, "rg")
	c.group(t, "noise")
	srv := c.server(t, "rg", "db1")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "pe1", subnet, *srv.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	pec := c.onlyConnection(t, "rg", "db1")
	// Older noise in another group: more events than one page holds, many times over.
	for i := range 30 {
		r := in.do(t, "PUT", fmt.Sprintf("/subscriptions/%s/resourceGroups/noise?api-version=2021-04-01", in.boot.SubscriptionID), tok,
			map[string]any{"location": "eastus", "tags": map[string]string{"n": fmt.Sprint(i)}}, nil)
		if r.status != http.StatusOK {
			t.Fatalf("PUT noise group: %d %s", r.status, r.raw)
		}
	}
	if _, err := c.setStatus(ctx, "rg", "db1", *pec.Name, "Approved", "ticket 42"); err != nil {
		t.Fatal(err)
	}

	all := in.activityLog(t, tok, "eventTimestamp ge '"+since+"'")
	if len(all) < 35 {
		t.Fatalf("activity log has %d events; want every write (at least 35)", len(all))
	}
	var last time.Time
	for i, e := range all {
		ts, err := time.Parse(time.RFC3339Nano, e["eventTimestamp"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && ts.After(last) {
			t.Errorf("event %d at %v after event %d at %v; want newest first", i, ts, i-1, last)
		}
		last = ts
	}

	approval := func(evs []map[string]any) bool {
		for _, e := range evs {
			if e["description"] == "ticket 42" && strings.HasSuffix(e["operationName"].(map[string]any)["value"].(string), "privateEndpointConnections/write") {
				return true
			}
		}
		return false
	}
	for _, f := range []string{
		"resourceUri eq '" + *srv.ID + "'", // the server and what is below it
		"resourceId eq '" + *pec.ID + "'",
		"resourceGroupName eq 'RG'",
		"caller eq '" + in.boot.ClientID + "'",
	} {
		evs := in.activityLog(t, tok, "eventTimestamp ge '"+since+"' and "+f)
		if !approval(evs) {
			t.Errorf("activity log with %s lacks the approval: %v", f, evs)
		}
		for _, e := range evs {
			if strings.HasPrefix(f, "resource") && strings.EqualFold(e["resourceGroupName"].(string), "noise") {
				t.Errorf("activity log with %s has an event of group noise: %v", f, e)
			}
		}
	}
	// The newest page of the whole subscription starts with the approval (its end event).
	r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/providers/Microsoft.Insights/eventtypes/management/values?"+
		url.Values{"api-version": {"2015-04-01"}, "$filter": {"eventTimestamp ge '" + since + "'"}}.Encode(), tok, nil, nil)
	page, _ := r.body["value"].([]any)
	if len(page) != 5 || r.body["nextLink"] == nil {
		t.Errorf("first page: %d events, nextLink %v; want 5 and a nextLink", len(page), r.body["nextLink"])
	}
	var first []map[string]any
	for _, v := range page {
		first = append(first, v.(map[string]any))
	}
	if !approval(first) {
		t.Errorf("first page lacks the approval: %v", first)
	}

	for _, tc := range []struct{ filter, want string }{
		{"eventTimestamp ge '" + since + "' and level eq 'Error'", "level"},
		{"eventTimestamp le '" + since + "'", "eventTimestamp ge"},
		{"eventTimestamp ge 'yesterday'", "Invalid eventTimestamp"},
		{"eventTimestamp ge '" + since + "' or caller eq 'x'", "Unsupported"},
	} {
		q := url.Values{"api-version": {"2015-04-01"}, "$filter": {tc.filter}}
		r := in.do(t, "GET", "/subscriptions/"+in.boot.SubscriptionID+"/providers/Microsoft.Insights/eventtypes/management/values?"+q.Encode(), tok, nil, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.raw, tc.want) {
			t.Errorf("$filter=%s: %d %s; want 400 saying %q", tc.filter, r.status, r.raw, tc.want)
		}
	}
}

// TestConcurrentMixedRequests: 200 concurrent lists, gets, writes and health checks all
// complete. (Handlers used to open a read transaction inside another, which exhausted the
// read pool and hung the whole API.) The deadline only detects a hang.
func TestConcurrentMixedRequests(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	c.group(t, "rg")
	c.server(t, "rg", "db1")
	c.vnet(t, "rg", "vnet")
	tok := in.token()
	sub := "/subscriptions/" + in.boot.SubscriptionID
	rg := sub + "/resourceGroups/rg"
	pgv, netv, rgv := "?api-version=2024-08-01", "?api-version=2024-05-01", "?api-version=2021-04-01"
	type req struct{ method, path, body string }
	kinds := []func(i int) req{
		func(int) req {
			return req{"GET", rg + "/providers/Microsoft.DBforPostgreSQL/flexibleServers" + pgv, ""}
		},
		func(int) req {
			return req{"GET", sub + "/providers/Microsoft.DBforPostgreSQL/flexibleServers" + pgv, ""}
		},
		func(int) req { return req{"GET", rg + "/providers/Microsoft.Network/virtualNetworks" + netv, ""} },
		func(int) req {
			return req{"GET", rg + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1/firewallRules" + pgv, ""}
		},
		func(int) req { return req{"GET", sub + "/resourcegroups" + rgv, ""} },
		func(int) req {
			return req{"GET", rg + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/db1" + pgv, ""}
		},
		func(int) req { return req{"GET", rg + "/providers/Microsoft.Network/virtualNetworks/vnet" + netv, ""} },
		func(i int) req {
			return req{"PUT", fmt.Sprintf("%s/resourcegroups/load%d%s", sub, i, rgv), `{"location":"eastus"}`}
		},
		func(int) req { return req{"GET", "/healthz", ""} },
	}
	const n = 200
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := in.httpClient()
	client.Timeout = 0 // ctx bounds the whole test
	tr := client.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = n
	// Open the connections first, so that the requests below arrive together rather than one
	// TLS handshake apart.
	var warm sync.WaitGroup
	for range n {
		warm.Add(1)
		go func() {
			defer warm.Done()
			if resp, err := client.Get(in.boot.ARMEndpoint + "/healthz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	warm.Wait()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rq := kinds[i%len(kinds)](i)
			var body io.Reader
			if rq.body != "" {
				body = strings.NewReader(rq.body)
			}
			hr, err := http.NewRequestWithContext(ctx, rq.method, in.boot.ARMEndpoint+rq.path, body)
			if err != nil {
				errs <- err
				return
			}
			hr.Header.Set("Authorization", "Bearer "+tok)
			hr.Header.Set("Content-Type", "application/json")
			<-start
			resp, err := client.Do(hr)
			if err != nil {
				errs <- fmt.Errorf("%s %s: %w", rq.method, rq.path, err)
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode/100 != 2 {
				errs <- fmt.Errorf("%s %s: %d %s", rq.method, rq.path, resp.StatusCode, raw)
				return
			}
			if strings.Contains(rq.path, "flexibleServers"+pgv) {
				var list struct{ Value []json.RawMessage }
				if err := json.Unmarshal(raw, &list); err != nil || len(list.Value) != 1 {
					errs <- fmt.Errorf("%s %s: %s; want one server", rq.method, rq.path, raw)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestActivityLogOfOneGroup: a Reader of one resource group, who may not read the
// subscription's activity log, reads that group's (a resourceGroupName or resourceUri filter
// inside it), as in Azure, and nothing of another group's.
func TestActivityLogOfOneGroup(t *testing.T) {
	in := start(t, nil)
	c := newClients(t, in)
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	c.group(t, "rg")
	c.group(t, "other")
	mine, theirs := c.server(t, "rg", "db1"), c.server(t, "other", "db2")
	cli := in.adminCLI(t)
	p := in.addServicePrincipal(t, cli, "rg-reader")
	sub := "/subscriptions/" + in.boot.SubscriptionID
	cli.ok(nil, "role", "assignment", "create", "--assignee", p.clientID, "--role", "Reader", "--scope", sub+"/resourceGroups/rg")
	tok := in.tokenFor(t, p.clientID, p.secret)
	list := func(f string) response {
		q := url.Values{"api-version": {"2015-04-01"}, "$filter": {"eventTimestamp ge '" + since + "'" + f}}
		return in.do(t, "GET", sub+"/providers/Microsoft.Insights/eventtypes/management/values?"+q.Encode(), tok, nil, nil)
	}
	for _, f := range []string{"", " and resourceGroupName eq 'other'", " and resourceUri eq '" + *theirs.ID + "'",
		" and resourceGroupName eq 'rg' and resourceUri eq '" + *theirs.ID + "'", " and resourceGroupName eq 'rg/../other'",
		" and resourceUri eq '/subscriptions/" + resource.NewGUID() + "/resourceGroups/rg'"} {
		if r := list(f); r.status != http.StatusForbidden || r.code() != "AuthorizationFailed" {
			t.Errorf("activity log%s as the group's reader: %d %s; want 403 AuthorizationFailed", f, r.status, r.raw)
		}
	}
	for _, f := range []string{" and resourceGroupName eq 'RG'", " and resourceUri eq '" + *mine.ID + "'"} {
		r := list(f)
		evs, _ := r.body["value"].([]any)
		if r.status != http.StatusOK || len(evs) == 0 {
			t.Fatalf("activity log%s as the group's reader: %d %s; want its events", f, r.status, r.raw)
		}
		for _, e := range evs {
			if g, _ := get(e, "resourceGroupName").(string); !strings.EqualFold(g, "rg") {
				t.Errorf("activity log%s shows an event of group %q: %v", f, g, e)
			}
		}
	}
}
