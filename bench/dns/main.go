// Command dns compares pglink's per-network resolver with dnsmasq serving the same records,
// both measured by dnsperf (Debian packages dnsperf and dnsmasq-base) in the same run.
//
//	go run ./bench/dns [-records 500] [-duration 10s] [-clients 2] [-outstanding 20] [-rate 0] [-rounds 2]
//
// It starts pglink in-process (local engine, temporary data dir) and, through the ARM API,
// creates a virtual network, the zone privatelink.postgres.database.azure.com linked to it and
// per record i an A record db-i and a CNAME alias-i → db-i. dnsmasq gets the same names as
// host-record and cname lines. The query file asks A for every db-i and alias-i. Each round
// runs dnsperf against pglink's resolver, then dnsmasq, and prints queries per second and the
// p50/p99 latency (from dnsperf -v, per query), then the ratios.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/server"
)

const zone = "privatelink.postgres.database.azure.com"

// rate is dnsperf's -Q; 0 for none.
var rate int

func main() {
	records := flag.Int("records", 500, "A records (each with a CNAME to it)")
	dur := flag.Duration("duration", 10*time.Second, "dnsperf run length per server per round")
	clients := flag.Int("clients", 2, "dnsperf clients (-c)")
	outstanding := flag.Int("outstanding", 20, "dnsperf outstanding queries (-q)")
	flag.IntVar(&rate, "rate", 0, "queries per second dnsperf sends (-Q); 0: as fast as the server answers")
	rounds := flag.Int("rounds", 2, "rounds, alternating the servers")
	flag.Parse()
	if err := run(*records, *dur, *clients, *outstanding, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(records int, dur time.Duration, clients, outstanding, rounds int) error {
	for _, tool := range []string{"dnsperf", "dnsmasq"} {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("%s is missing: install it (apt-get install dnsperf dnsmasq-base, or .ci/install-deps)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "pglink-bench-dns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.Listen, cfg.DNSListen = filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0"
	cfg.EndpointNetwork = fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	c, err := newClient(srv.Bootstrap())
	if err != nil {
		return err
	}
	rg := "/subscriptions/" + srv.Bootstrap().SubscriptionID + "/resourceGroups/bench"
	vnet := rg + "/providers/Microsoft.Network/virtualNetworks/app"
	zoneID := rg + "/providers/Microsoft.Network/privateDnsZones/" + zone
	const dnsV = "?api-version=2020-06-01"
	c.must("PUT", rg+"?api-version=2021-04-01", map[string]any{"location": "eastus"}, 201)
	c.must("PUT", vnet+"?api-version=2022-01-01", map[string]any{"location": "eastus",
		"properties": map[string]any{"addressSpace": map[string]any{"addressPrefixes": []string{"10.0.0.0/16"}}}}, 201)
	c.must("PUT", zoneID+dnsV, map[string]any{"location": "global"}, 201)
	c.must("PUT", zoneID+"/virtualNetworkLinks/app"+dnsV, map[string]any{"location": "global",
		"properties": map[string]any{"virtualNetwork": map[string]any{"id": vnet}, "registrationEnabled": false}}, 201)
	t0 := time.Now()
	var conf, queries strings.Builder
	conf.WriteString("no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1\nlocal=/" + zone + "/\n")
	for i := 0; i < records; i++ {
		ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		c.must("PUT", fmt.Sprintf("%s/A/db-%d%s", zoneID, i, dnsV), map[string]any{"properties": map[string]any{
			"ttl": 3600, "aRecords": []any{map[string]string{"ipv4Address": ip}}}}, 201)
		c.must("PUT", fmt.Sprintf("%s/CNAME/alias-%d%s", zoneID, i, dnsV), map[string]any{"properties": map[string]any{
			"ttl": 3600, "cnameRecord": map[string]string{"cname": fmt.Sprintf("db-%d.%s", i, zone)}}}, 201)
		fmt.Fprintf(&conf, "host-record=db-%d.%s,%s,3600\ncname=alias-%d.%s,db-%d.%s,3600\n", i, zone, ip, i, zone, i, zone)
		fmt.Fprintf(&queries, "db-%d.%s A\nalias-%d.%s A\n", i, zone, i, zone)
	}
	fmt.Printf("created %d record sets through the API in %v\n", 2*records, time.Since(t0).Round(time.Millisecond))
	var v struct {
		Properties struct {
			DataPlane struct {
				DNSResolver string `json:"dnsResolver"`
			} `json:"dataPlane"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(c.must("GET", vnet+"?api-version=2022-01-01", nil, 200), &v); err != nil {
		return err
	}
	pglinkAddr := v.Properties.DataPlane.DNSResolver

	qfile := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(qfile, []byte(queries.String()), 0o644); err != nil {
		return err
	}
	masqAddr, stop, err := startDnsmasq(dir, conf.String())
	if err != nil {
		return err
	}
	defer stop()

	targets := []struct{ name, addr string }{{"pglink", pglinkAddr}, {"dnsmasq", masqAddr}}
	fmt.Printf("pglink resolver %s, dnsmasq %s; %d names; dnsperf -c %d -q %d -Q %d -l %v, %d round(s)\n",
		pglinkAddr, masqAddr, 2*records, clients, outstanding, rate, dur, rounds)
	for _, tg := range targets { // warm up, and check both answer
		if _, err := dnsperf(tg.addr, qfile, 2*time.Second, clients, outstanding); err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}
	best := map[string]result{}
	for r := 0; r < rounds; r++ {
		order := targets
		if r%2 == 1 {
			order = []struct{ name, addr string }{targets[1], targets[0]}
		}
		for _, tg := range order {
			res, err := dnsperf(tg.addr, qfile, dur, clients, outstanding)
			if err != nil {
				return fmt.Errorf("%s: %w", tg.name, err)
			}
			fmt.Printf("round %d %-8s %9.0f qps  p50 %6.3f ms  p99 %6.3f ms  lost %d\n", r+1, tg.name, res.qps, ms(res.p50), ms(res.p99), res.lost)
			if res.qps > best[tg.name].qps {
				best[tg.name] = res
			}
		}
	}
	p, m := best["pglink"], best["dnsmasq"]
	fmt.Printf("best: pglink %.0f qps (p99 %.3f ms), dnsmasq %.0f qps (p99 %.3f ms)\n", p.qps, ms(p.p99), m.qps, ms(m.p99))
	fmt.Printf("ratio pglink/dnsmasq: qps %.2f, p99 %.2f\n", p.qps/m.qps, float64(p.p99)/float64(m.p99))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type result struct {
	qps      float64
	p50, p99 time.Duration
	lost     int
}

// dnsperf runs dnsperf against addr and reads its summary and, from -v, each query's latency.
func dnsperf(addr, qfile string, dur time.Duration, clients, outstanding int) (result, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command("dnsperf", "-s", host, "-p", port, "-d", qfile, "-l", strconv.Itoa(int(dur.Seconds())),
		"-c", strconv.Itoa(clients), "-q", strconv.Itoa(outstanding), "-v")
	if rate > 0 {
		cmd.Args = append(cmd.Args, "-Q", strconv.Itoa(rate))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	var res result
	var lat []time.Duration
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[0] == ">": // "> NOERROR name A 0.000123"
			if f[1] != "NOERROR" {
				return res, fmt.Errorf("dnsperf: answer %s", line)
			}
			if s, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				lat = append(lat, time.Duration(s*float64(time.Second)))
			}
		case strings.HasPrefix(strings.TrimSpace(line), "Queries per second:"):
			res.qps, _ = strconv.ParseFloat(f[len(f)-1], 64)
		case strings.HasPrefix(strings.TrimSpace(line), "Queries lost:"):
			res.lost, _ = strconv.Atoi(f[2])
		}
	}
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("dnsperf: %w", err)
	}
	if len(lat) == 0 || res.qps == 0 {
		return res, fmt.Errorf("dnsperf reported no answers")
	}
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return res, nil
}

// startDnsmasq runs dnsmasq in the foreground on a free port of 127.0.0.1 with conf.
func startDnsmasq(dir, conf string) (string, func(), error) {
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", nil, err
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	path := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	bin, _ := lookPath("dnsmasq")
	cmd := exec.Command(bin, "--keep-in-foreground", "--conf-file="+path, "--port="+strconv.Itoa(port), "--pid-file=", "--user=root")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; i < 50; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("dnsmasq did not start on %s", addr)
}

// lookPath finds a program on PATH or in /usr/sbin (dnsmasq lives there).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

type client struct {
	http  *http.Client
	base  string
	token string
}

func newClient(b server.Bootstrap) (*client, error) {
	pem, err := os.ReadFile(b.CACertFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	form := strings.NewReader("grant_type=client_credentials&client_id=" + b.ClientID + "&client_secret=" + b.ClientSecret +
		"&scope=" + b.ARMEndpoint + "/.default")
	resp, err := hc.Post(b.AuthorityHost+"/"+b.TenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("token: status %d %v", resp.StatusCode, err)
	}
	return &client{http: hc, base: b.ARMEndpoint, token: t.AccessToken}, nil
}

// must sends a request and panics unless the status is one of want.
func (c *client) must(method, path string, body any, want ...int) []byte {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		panic(fmt.Sprintf("%s %s: %v", method, path, err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		panic(fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, b))
	}
	return b
}
