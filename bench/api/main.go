// Command api measures pglink's ARM API latency on this machine: GET of a flexible server and
// list of its private endpoint connections at a fixed open-loop rate with many resources
// stored, and the time from an approval request to its operation's Succeeded.
//
//	go run ./bench/api [-rate 200] [-duration 10s] [-resources 10000] [-approvals 200]
//
// It starts pglink in-process on a temporary data dir (embedded SQLite store) and prints
// p50/p90/p99/max per request kind.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/bench/internal/armclient"
	"github.com/pglink/pglink/internal/server"
	"github.com/pglink/pglink/internal/store"
)

func main() {
	rate := flag.Int("rate", 200, "requests per second (open loop)")
	dur := flag.Duration("duration", 10*time.Second, "how long to send load")
	nres := flag.Int("resources", 10000, "resources stored before the load starts")
	napprove := flag.Int("approvals", 200, "approvals to time")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (pglink runs in-process) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*rate, *dur, *nres, *napprove); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// client panics on an unexpected status: the setup steps of this benchmark must succeed.
type client struct{ *armclient.Client }

func (c client) do(method, path string, body any) (int, []byte, error) {
	return c.Do(context.Background(), method, path, body)
}

func (c client) must(method, path string, body any, want ...int) []byte {
	b, err := c.Expect(context.Background(), method, path, body, want...)
	if err != nil {
		panic(err)
	}
	return b
}

func run(rate int, dur time.Duration, nres, napprove int) error {
	dir, err := os.MkdirTemp("", "pglink-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	b := srv.Bootstrap()
	hc, err := armclient.HTTPClient(64, b.CACertFile)
	if err != nil {
		return err
	}
	ac, err := armclient.New(context.Background(), hc, b)
	if err != nil {
		return err
	}
	c := client{ac}

	sub := "/subscriptions/" + b.SubscriptionID
	rg := sub + "/resourceGroups/bench"
	const v = "?api-version=2024-08-01"
	c.must("PUT", rg+"?api-version=2021-04-01", map[string]any{"location": "eastus"}, 201)
	srvPath := rg + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/bench-db"
	status, body, err := c.do("PUT", srvPath+v, map[string]any{"location": "eastus", "properties": map[string]any{
		"administratorLogin": "pgadmin", "administratorLoginPassword": "S3cret-pass!"}})
	if err != nil || (status != 201 && status != 202) {
		return fmt.Errorf("create server: %d %v %s", status, err, body)
	}
	// A create that outlasts the inline wait answers 202: wait for Ready.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var s struct {
			Properties struct {
				State string `json:"state"`
			} `json:"properties"`
		}
		json.Unmarshal(c.must("GET", srvPath+v, nil, 200), &s)
		if s.Properties.State == "Ready" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server is %s 2 minutes after its create", s.Properties.State)
		}
	}
	c.must("PUT", rg+"/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2022-01-01", map[string]any{
		"location": "eastus", "properties": map[string]any{"addressSpace": map[string]any{"addressPrefixes": []string{"10.0.0.0/8"}},
			"subnets": []any{map[string]any{"name": "pe", "properties": map[string]any{"addressPrefix": "10.0.0.0/16"}}}}}, 201)
	subnet := rg + "/providers/Microsoft.Network/virtualNetworks/vnet/subnets/pe"

	// Private endpoints through the API: each opens a Pending connection to time approvals on.
	t0 := time.Now()
	for i := 0; i < napprove; i++ {
		c.must("PUT", fmt.Sprintf("%s/providers/Microsoft.Network/privateEndpoints/pe%d?api-version=2022-01-01", rg, i), map[string]any{
			"location": "eastus", "properties": map[string]any{"subnet": map[string]any{"id": subnet},
				"manualPrivateLinkServiceConnections": []any{map[string]any{"name": "c", "properties": map[string]any{
					"privateLinkServiceId": srvPath, "groupIds": []string{"postgresqlServer"}}}}}}, 201)
	}
	fmt.Printf("created %d private endpoints through the API in %v\n", napprove, time.Since(t0).Round(time.Millisecond))

	// The rest of the resources straight into the store: firewall rules of other servers.
	if err := seed(srv.Store(), b.SubscriptionID, nres-napprove*3); err != nil {
		return err
	}

	var names []string
	for next := c.Base + srvPath + "/privateEndpointConnections" + v; next != ""; {
		var page struct {
			Value []struct {
				Name string `json:"name"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		json.Unmarshal(c.must("GET", strings.TrimPrefix(next, c.Base), nil, 200), &page)
		for _, p := range page.Value {
			names = append(names, p.Name)
		}
		next = page.NextLink
	}
	var approve []time.Duration
	for _, name := range names {
		start := time.Now()
		status, body, err := c.do("PUT", srvPath+"/privateEndpointConnections/"+name+v, map[string]any{"properties": map[string]any{
			"privateLinkServiceConnectionState": map[string]any{"status": "Approved", "description": "bench"}}})
		if err != nil || status != 200 {
			return fmt.Errorf("approve %s: %d %v %s", name, status, err, body)
		}
		approve = append(approve, time.Since(start))
	}

	kinds := map[string]string{"GET server": srvPath + v, "list connections": srvPath + "/privateEndpointConnections" + v}
	lat := map[string][]time.Duration{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := 0
	tick := time.NewTicker(time.Second / time.Duration(rate))
	deadline := time.Now().Add(dur)
	i := 0
	for now := range tick.C {
		if now.After(deadline) {
			break
		}
		name := "GET server"
		if i%2 == 1 {
			name = "list connections"
		}
		i++
		wg.Add(1)
		go func(name string, sent time.Time) {
			defer wg.Done()
			status, _, err := c.do("GET", kinds[name], nil)
			d := time.Since(sent)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || status != 200 {
				errs++
				return
			}
			lat[name] = append(lat[name], d)
		}(name, now)
	}
	tick.Stop()
	wg.Wait()
	fmt.Printf("\npglink API latency, %d resources stored, %d req/s for %v (open loop), embedded store\n", nres, rate, dur)
	fmt.Printf("%-22s %7s %9s %9s %9s %9s\n", "request", "n", "p50", "p90", "p99", "max")
	for _, name := range []string{"GET server", "list connections"} {
		report(name, lat[name])
	}
	report("approve → Succeeded", approve)
	if errs > 0 {
		return fmt.Errorf("%d requests failed", errs)
	}
	return nil
}

func report(name string, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	ms := func(x time.Duration) string { return fmt.Sprintf("%.2fms", float64(x.Microseconds())/1000) }
	fmt.Printf("%-22s %7d %9s %9s %9s %9s\n", name, len(d), ms(q(0.5)), ms(q(0.9)), ms(q(0.99)), ms(q(1)))
}

// seed writes n firewall rules spread over 100 servers directly into the store.
func seed(st store.Store, sub string, n int) error {
	if n <= 0 {
		return nil
	}
	rg := "/subscriptions/" + sub + "/resourceGroups/bench"
	return st.Update(context.Background(), func(tx store.Tx) error {
		for s := 0; s < 100; s++ {
			sid := fmt.Sprintf("%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/seed-%d", rg, s)
			body := fmt.Sprintf(`{"id":%q,"name":"seed-%d","type":"Microsoft.DBforPostgreSQL/flexibleServers","location":"eastus","properties":{"state":"Ready","version":"16"}}`, sid, s)
			if _, err := tx.Put(context.Background(), store.Resource{Key: strings.ToLower(sid), ID: sid, Type: "Microsoft.DBforPostgreSQL/flexibleServers", Parent: strings.ToLower(rg), Body: []byte(body)}, ""); err != nil {
				return err
			}
		}
		for i := 0; i < n-100; i++ {
			sid := fmt.Sprintf("%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/seed-%d", rg, i%100)
			id := fmt.Sprintf("%s/firewallRules/r%d", sid, i)
			body := fmt.Sprintf(`{"id":%q,"name":"r%d","type":"Microsoft.DBforPostgreSQL/flexibleServers/firewallRules","properties":{"startIpAddress":"10.0.0.1","endIpAddress":"10.0.0.2"}}`, id, i)
			if _, err := tx.Put(context.Background(), store.Resource{Key: strings.ToLower(id), ID: id, Type: "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules", Parent: strings.ToLower(sid), Body: []byte(body)}, ""); err != nil {
				return err
			}
		}
		return nil
	})
}
