package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pgbenchResult is what a pgbench run reports.
type pgbenchResult struct {
	out       string
	err       error
	processed int64 // transactions processed
	failed    int64 // failed transactions (-1: not reported)
	aborted   bool  // a client aborted: a refused or lost connection
}

var (
	rePgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	rePgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

func parsePgbench(out string, err error) pgbenchResult {
	r := pgbenchResult{out: out, err: err, failed: -1}
	if m := rePgbenchProcessed.FindStringSubmatch(out); m != nil {
		r.processed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := rePgbenchFailed.FindStringSubmatch(out); m != nil {
		r.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	r.aborted = strings.Contains(out, "aborted") || strings.Contains(out, "connection to server")
	return r
}

// TestParsePgbench pins the lines of pgbench's report the restart test relies on.
func TestParsePgbench(t *testing.T) {
	for _, tc := range []struct {
		out               string
		processed, failed int64
		aborted           bool
	}{
		{"number of transactions actually processed: 1234\nnumber of failed transactions: 0 (0.000%)\n", 1234, 0, false},
		{"pgbench: error: client 3 aborted in command 4 (SQL) of script 0; perhaps the backend died while processing\n" +
			"number of transactions actually processed: 99\nnumber of failed transactions: 0 (0.000%)\n", 99, 0, true},
		{"pgbench: error: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n", 0, -1, true},
	} {
		r := parsePgbench(tc.out, nil)
		if r.processed != tc.processed || r.failed != tc.failed || r.aborted != tc.aborted {
			t.Errorf("parsePgbench(%q) = %d processed, %d failed, aborted %v; want %d, %d, %v",
				tc.out, r.processed, r.failed, r.aborted, tc.processed, tc.failed, tc.aborted)
		}
	}
}

// runPgbench runs pgbench against addr over TLS (sslmode=require) as the administrator.
func runPgbench(ctx context.Context, pgbench, addr string, args ...string) pgbenchResult {
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, pgbench, append(append([]string{"-h", host, "-p", port, "-U", "pgadmin"}, args...), "postgres")...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE=require", "PGCONNECT_TIMEOUT=10")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return parsePgbench(out.String(), err)
}

// TestRestartDropsNoSession restarts `pglink serve` (SIGTERM, then start again on the same data
// dir and address) while pgbench runs through a private endpoint over TLS: 8 clients on open
// sessions, and 4 more that connect for every transaction (-C). The gateway process outlives
// serve: no transaction fails and no connection is refused. Then `pglink gateway stop` ends
// the open sessions with SQLSTATE 57P01 and its reason, not with a bare EOF.
func TestRestartDropsNoSession(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the pglink binary and pgbench")
	}
	pgbench := requirePGTool(t, "pgbench")
	bin := buildPglink(t)
	dir, addr := traversableDir(t), freeAddr(t)
	block := fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
	flags := []string{"--endpoint-network", block, "--event-loops", "2"}
	cmd, in := serveProcess(t, bin, dir, addr, flags...)
	c := newClients(t, in)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "bench-db")
	// Plaintext sessions are part of the point below (a stop ends plain and TLS sessions alike).
	setParameter(t, c.configurations(t), "rg", "bench-db", "require_secure_transport", "off")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "app-pe", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	pe := peAddress(t, c, "rg", "app-pe")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if r := runPgbench(ctx, pgbench, pe, "-i", "-q", "-s", "1"); r.err != nil {
		t.Fatalf("pgbench -i: %v\n%s", r.err, r.out)
	}

	const runFor = 15 // seconds
	steady, churn := make(chan pgbenchResult, 1), make(chan pgbenchResult, 1)
	began := time.Now()
	go func() { steady <- runPgbench(ctx, pgbench, pe, "-c", "8", "-j", "2", "-T", strconv.Itoa(runFor)) }()
	go func() {
		churn <- runPgbench(ctx, pgbench, pe, "-C", "-S", "-c", "4", "-j", "1", "-T", strconv.Itoa(runFor))
	}()

	// Restart serve while both run.
	time.Sleep(3 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("pglink serve after SIGTERM: %v", err)
	}
	stoppedAt := time.Since(began)
	time.Sleep(time.Second) // the control plane is down for a while
	cmd, in = serveProcess(t, bin, dir, addr, flags...)
	t.Logf("pglink serve stopped %v into the run and served again %v into it", stoppedAt.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if time.Since(began) > runFor*time.Second-2*time.Second {
		t.Errorf("the restart took until %v of a %ds run; the run must outlast it", time.Since(began), runFor)
	}

	for name, ch := range map[string]chan pgbenchResult{"pgbench -c 8 -j 2": steady, "pgbench -C -S -c 4": churn} {
		r := <-ch
		t.Logf("%s: %d transactions, %d failed", name, r.processed, r.failed)
		if r.err != nil || r.aborted || r.failed != 0 || r.processed == 0 {
			t.Errorf("%s across a restart of pglink serve: %v, %d processed, %d failed, aborted %v; want 0 failed, none aborted\n%s",
				name, r.err, r.processed, r.failed, r.aborted, r.out)
		}
	}

	// The restarted serve reports the gateway process's counters.
	resp, err := in.httpClient().Get(in.boot.ARMEndpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := regexp.MustCompile(`(?m)^pglink_gateway_admitted_total ([0-9.e+]+)$`).FindSubmatch(metrics); m == nil || string(m[1]) == "0" {
		t.Errorf("/metrics after the restart: pglink_gateway_admitted_total = %q; want the sessions pgbench opened", m)
	}
	if m := regexp.MustCompile(`(?m)^pglink_gateway_event_loops ([0-9]+)$`).FindSubmatch(metrics); m == nil || string(m[1]) != "2" {
		t.Errorf("/metrics: pglink_gateway_event_loops = %q; want 2, the gateway process's --event-loops", m)
	}

	// The restarted serve lists the gateway process's open sessions.
	open, err := connect(ctx, pe, "", "disable", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	got := in.do(t, "GET", *srv.ID+"/sessions?api-version=2024-08-01", in.token(), nil, nil)
	if v, _ := get(got.body, "value").([]interface{}); got.status != 200 || len(v) != 1 || get(v[0], "properties.kind") != "PrivateEndpoint" ||
		get(v[0], "properties.tls") != false {
		t.Errorf("sessions through the gateway process = %d %s; want the one plaintext session through app-pe", got.status, got.raw)
	}
	open.Close(ctx)

	// A gateway that dies is started again by serve, with its listeners and the policy.
	pidFile := filepath.Join(dir, "gateway", "gateway.pid")
	old := readPID(t, pidFile)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := connect(ctx, pe, "", "require", adminPassword)
		if err == nil {
			conn.Close(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session 30s after the gateway was killed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pid := readPID(t, pidFile); pid == old {
		t.Errorf("gateway pid %d after kill -9 of %d; want a new gateway", pid, old)
	}

	// A plain stop of the gateway: serve first (or it starts the gateway again), then the
	// gateway; open sessions get 57P01 with the reason.
	plain, err := connect(ctx, pe, "", "disable", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	tlsConn, err := connect(ctx, pe, "", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if out, err := exec.Command(bin, "gateway", "stop", "--data-dir", dir, "--reason", "maintenance").CombinedOutput(); err != nil {
		t.Fatalf("pglink gateway stop: %v\n%s", err, out)
	}
	for _, s := range []struct {
		name string
		err  error
	}{{"plain", selectOne(t, plain)}, {"TLS", selectOne(t, tlsConn)}} {
		code, msg := pgCode(s.err)
		if code != "57P01" || !strings.Contains(msg, "pglink gateway is shutting down: maintenance") {
			t.Errorf("%s session after pglink gateway stop: %v (SQLSTATE %q); want 57P01 with the reason", s.name, s.err, code)
		}
	}
	if _, err := connect(ctx, pe, "", "disable", adminPassword); err == nil {
		t.Error("connected after pglink gateway stop")
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}
