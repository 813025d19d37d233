package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/server"
)

// buildPglink builds the pglink binary once per test binary run.
func buildPglink(t *testing.T) string {
	t.Helper()
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pglink-e2e-bin-")
		if err != nil {
			builtErr = err
			return
		}
		builtDir = dir
		bin := filepath.Join(dir, "pglink")
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pglink").CombinedOutput(); err != nil {
			builtErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if builtErr != nil {
		t.Fatalf("build pglink: %v", builtErr)
	}
	return builtBin
}

// The pglink binary is built once per run of the test binary and shared by its tests;
// TestMain removes it.
var (
	builtOnce          sync.Once
	builtBin, builtDir string
	builtErr           error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveProcess runs `pglink serve` as a child process, with extra flags, and waits for
// /healthz. When the test ends it kills it and stops the gateway process it started.
func serveProcess(t *testing.T, bin, dir, addr string, extra ...string) (*exec.Cmd, *instance) {
	t.Helper()
	cmd := startServe(t, bin, dir, addr, t.Output(), extra...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := server.ReadBootstrap(dir); err == nil && b.ARMEndpoint == "https://"+addr {
			in := &instance{t: t, dir: dir, boot: b}
			resp, err := in.httpClient().Get(b.ARMEndpoint + "/healthz")
			if err == nil && resp.StatusCode == http.StatusOK {
				resp.Body.Close()
				return cmd, in
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("pglink did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startServe starts `pglink serve` on dir and addr, with extra flags and its stderr to stderr;
// when the test ends it kills it and stops the gateway process it started.
func startServe(t *testing.T, bin, dir, addr string, stderr io.Writer, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", dir, "--listen", addr, "--dns-listen", "127.0.0.1:0"}, extra...)...)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		stopGatewayProcess(t, bin, dir)
	})
	return cmd
}

// TestKillNineLosesNoAcknowledgedWrite SIGKILLs `pglink serve` while clients write, restarts
// it, and checks that every write the API acknowledged is there.
func TestKillNineLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the pglink binary")
	}
	bin := buildPglink(t)
	dir, addr := traversableDir(t), freeAddr(t)
	cmd, in := serveProcess(t, bin, dir, addr)
	tok := in.token()
	sub := "/subscriptions/" + in.boot.SubscriptionID
	if r := in.do(t, "PUT", sub+"/resourcegroups/rg?api-version=2021-04-01", tok, map[string]any{"location": "eastus"}, nil); r.status != 201 {
		t.Fatalf("create group: %d %s", r.status, r.raw)
	}
	// Writers: virtual networks, each acknowledged by 201.
	acked := make(chan string, 10000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	hc := in.httpClient()
	hc.Timeout = 5 * time.Second
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("vnet-%d-%d", w, i)
				req, _ := http.NewRequest("PUT", in.boot.ARMEndpoint+sub+"/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/"+name+"?api-version=2022-01-01",
					stringsReader(`{"location":"eastus","properties":{"addressSpace":{"addressPrefixes":["10.0.0.0/16"]}}}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					acked <- name
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	cancel()
	for w := 0; w < 4; w++ {
		<-done
	}
	close(acked)
	var names []string
	for n := range acked {
		names = append(names, n)
	}
	if len(names) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	_, in2 := serveProcess(t, bin, dir, addr)
	tok = in2.token()
	for _, n := range names {
		r := in2.do(t, "GET", sub+"/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/"+n+"?api-version=2022-01-01", tok, nil, nil)
		if r.status != http.StatusOK {
			t.Errorf("acknowledged %s is gone after kill -9: %d %s", n, r.status, r.raw)
		}
	}
	t.Logf("%d acknowledged writes survived kill -9", len(names))
	if _, err := os.Stat(filepath.Join(dir, "bootstrap.json")); err != nil {
		t.Error(err)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// stopGatewayProcess stops the gateway process of data dir dir, if one runs, with `pglink
// gateway stop`, and kills it if that fails.
func stopGatewayProcess(t *testing.T, bin, dir string) {
	t.Helper()
	out, err := exec.Command(bin, "gateway", "stop", "--data-dir", dir, "--timeout", "20s").CombinedOutput()
	if err == nil || strings.Contains(string(out), "no pglink gateway runs") {
		return
	}
	t.Logf("pglink gateway stop: %v: %s", err, out)
	b, rerr := os.ReadFile(filepath.Join(dir, "gateway", "gateway.pid"))
	if pid, cerr := strconv.Atoi(strings.TrimSpace(string(b))); rerr == nil && cerr == nil && pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// traversableDir returns a new empty directory that the clusters' OS users can reach (their
// clusters are stopped and the users removed when the test ends), for a data
// dir with the local engine (t.TempDir is private to root).
func traversableDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "pglink-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	cleanupClusters(t, filepath.Join(base, "data"))
	return filepath.Join(base, "data")
}
