package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
)

// startReplacement runs `pglink gateway --replace` as its own process group, its output in the
// test log; it is killed when the test ends.
func startReplacement(t *testing.T, bin, dir string, grace time.Duration) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "gateway", "--replace", "--data-dir", dir, "--drain-grace", grace.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b, err := os.ReadFile(logf.Name()); err == nil {
			t.Logf("replacement gateway's log:\n%s", b)
		}
	})
	return cmd
}

// processGone reports whether pid no longer runs (or is a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

// TestGatewayReplacement replaces the running gateway process with a new one (`pglink gateway
// --replace`) while clients connect in a loop and two sessions are open: no connection is
// refused; pglink serve attaches to the new gateway, whose policy changes take effect; plain
// sessions (pgx, psql) move to the new gateway and keep querying after the old one is gone; the
// TLS session keeps working until the old gateway's grace period ends, and then gets 57P01.
func TestGatewayReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the pglink binary")
	}
	bin := buildPglink(t)
	dir, addr := traversableDir(t), freeAddr(t)
	block := fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
	_, in := serveProcess(t, bin, dir, addr, "--endpoint-network", block)
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")
	srv := c.localServer(t, "rg", "up-db")
	// Plaintext sessions are the point: they move to the new gateway.
	setParameter(t, c.configurations(t), "rg", "up-db", "require_secure_transport", "off")
	subnet := c.vnet(t, "rg", "vnet")
	if _, err := c.endpoint(t, "rg", "app-pe", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	pe := peAddress(t, c, "rg", "app-pe")
	tlsConn, err := connect(ctx, pe, "", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer tlsConn.Close(context.Background())
	// A TLS session through another endpoint, which is rejected after the switch: the old
	// gateway, which still relays it, learns of it from the new one and revokes it.
	if _, err := c.endpoint(t, "rg", "drop-pe", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	dropped, err := connect(ctx, peAddress(t, c, "rg", "drop-pe"), "", "require", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer dropped.Close(context.Background())
	plain, err := connect(ctx, pe, "", "disable", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(context.Background())
	if _, err := plain.Exec(ctx, "create temp table kept(x int); insert into kept values (1)"); err != nil {
		t.Fatal(err)
	}
	// psql on a plain session that sleeps across the switch and the old gateway's exit, then
	// queries again.
	host, port, _ := net.SplitHostPort(pe)
	psql := exec.Command("psql", fmt.Sprintf("host=%s port=%s user=pgadmin dbname=postgres sslmode=disable", host, port),
		"-tA", "-v", "ON_ERROR_STOP=1", "-c", "select 'before'", "-c", `\! sleep 9`, "-c", "select 'after'")
	psql.Env = append(os.Environ(), "PGPASSWORD="+adminPassword)
	var psqlOut strings.Builder
	psql.Stdout, psql.Stderr = &psqlOut, &psqlOut
	if err := psql.Start(); err != nil {
		t.Fatal(err)
	}
	psqlDone := make(chan error, 1)
	go func() { psqlDone <- psql.Wait() }()
	t.Cleanup(func() { psql.Process.Kill() })

	// Clients connect, query and leave in a loop throughout the switch.
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	loopCtx, stopLoop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loopCtx.Err() == nil {
				conn, err := connect(context.Background(), pe, "", []string{"disable", "require"}[i], adminPassword)
				if err == nil {
					var n int
					err = conn.QueryRow(context.Background(), "select 1").Scan(&n)
					conn.Close(context.Background())
				}
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				ok.Add(1)
			}
		}()
	}

	pidFile := filepath.Join(dir, "gateway", "gateway.pid")
	old := readPID(t, pidFile)
	time.Sleep(500 * time.Millisecond)
	const grace = 4 * time.Second
	repl := startReplacement(t, bin, dir, grace)
	deadline := time.Now().Add(30 * time.Second)
	for readPID(t, pidFile) != repl.Process.Pid {
		if time.Now().After(deadline) {
			t.Fatal("the replacement gateway did not take over within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tookOver := time.Now()
	// Right after the switch the TLS session, still relayed by the old gateway, works, and so
	// does the plain session, which the new gateway relays.
	if err := selectOne(t, tlsConn); err != nil {
		t.Errorf("TLS session right after the switch: %v", err)
	}
	var kept int
	if err := plain.QueryRow(ctx, "select count(*) from kept").Scan(&kept); err != nil || kept != 1 {
		t.Errorf("plain session right after the switch: count = %d, %v; want 1", kept, err)
	}
	time.Sleep(time.Second)
	stopLoop()
	wg.Wait()
	t.Logf("during the switch: %d connections served, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d connections failed during the switch; first: %s", failed.Load(), *firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Error("no connection was served during the switch")
	}

	// pglink serve attached to the new gateway: a new endpoint is served there.
	if _, err := c.endpoint(t, "rg", "other-pe", subnet, *srv.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	if conn, err := connect(ctx, peAddress(t, c, "rg", "other-pe"), "", "disable", adminPassword); err != nil {
		t.Errorf("a private endpoint made after the switch: %v", err)
	} else {
		conn.Close(ctx)
	}
	if err := selectOne(t, tlsConn); err != nil {
		t.Errorf("TLS session during the grace period: %v", err)
	}
	var drop string
	pager := c.conns.NewListByServerPager("rg", "up-db", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, pc := range page.Value {
			if strings.HasPrefix(*pc.Name, "drop-pe.") {
				drop = *pc.Name
			}
		}
	}
	if _, err := c.setStatus(ctx, "rg", "up-db", drop, pg.PrivateEndpointServiceConnectionStatusRejected, "no more"); err != nil {
		t.Fatal(err)
	}
	err = waitClosed(t, dropped, 5*time.Second)
	if code, msg := pgCode(err); code != "57P01" || !strings.Contains(msg, "Rejected") {
		t.Errorf("TLS session on the old gateway after its endpoint was rejected: %v; want 57P01 Rejected", err)
	}

	// The old gateway exits once its grace period is over.
	for !processGone(old) {
		if time.Since(tookOver) > grace+30*time.Second {
			t.Fatalf("the old gateway %d still runs %v after the switch", old, time.Since(tookOver))
		}
		time.Sleep(100 * time.Millisecond)
	}
	err = selectOne(t, tlsConn)
	if code, msg := pgCode(err); code != "57P01" || !strings.Contains(msg, "pglink gateway is being replaced; reconnect") {
		t.Errorf("TLS session after the grace period: %v; want 57P01 saying the gateway is being replaced", err)
	}
	// The plain sessions outlive the old gateway.
	if err := plain.QueryRow(ctx, "select count(*) from kept").Scan(&kept); err != nil || kept != 1 {
		t.Errorf("plain session after the old gateway exited: count = %d, %v; want 1", kept, err)
	}
	if err := <-psqlDone; err != nil || strings.Fields(psqlOut.String()) == nil || !strings.Contains(psqlOut.String(), "after") {
		t.Errorf("psql across the replacement: %v\n%s", err, psqlOut.String())
	}
}
