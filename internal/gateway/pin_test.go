//go:build linux

package gateway

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pinnedThreads returns the threads of this process allowed on one CPU only.
func pinnedThreads(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("/proc/self/task/*/status")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, _ := strings.Cut(line, ":"); k == "Cpus_allowed_list" {
				if v = strings.TrimSpace(v); !strings.ContainsAny(v, "-,") {
					out = append(out, filepath.Base(filepath.Dir(f))+" on CPU "+v)
				}
			}
		}
	}
	return out
}

// TestLoopPinsWhileBusy: the event loop keeps its thread on one CPU while it relays two
// sessions or more (when the process may use several CPUs; on one there is nothing to pin),
// not while it relays one, and lets it go once it relays none.
func TestLoopPinsWhileBusy(t *testing.T) {
	if n := len(pinnedThreads(t)); n != 0 {
		t.Fatalf("%d threads pinned before the test", n)
	}
	g := newGateway(t, Config{Reactors: 1})
	if len(g.reactors) == 0 {
		t.Fatal("no event loop on Linux")
	}
	a := freeAddr(t)
	apply(t, g, 1, private(a, "a", echoUpstream(t)))
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(startup); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(nc, make([]byte, len(startup))); err != nil { // echoed: relayed
			t.Fatal(err)
		}
		return nc
	}
	// eventually waits until the pinned threads number want (the loop re-pins after an event).
	eventually := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(pinnedThreads(t)) != want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := pinnedThreads(t); len(got) != want {
			t.Fatalf("%s: pinned threads %v; want %d", what, got, want)
		}
	}
	one := dial()
	eventually("one session", 0)
	two := dial()
	busy := 1
	if runtime.NumCPU() < 2 {
		busy = 0
	}
	eventually("two sessions", busy)
	one.Close()
	eventually("one of two sessions left", busy)
	two.Close()
	eventually("no session", 0)
}
