package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPgMeter: the meter counts the CPU of a child that exited during the measurement (in its
// parent's reaped children's time).
func TestPgMeter(t *testing.T) {
	done := filepath.Join(t.TempDir(), "done")
	cmd := exec.Command("sh", "-c", `sleep 0.2; (i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done); touch "$1"; sleep 5`, "sh", done)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	m := startPgMeter(cmd.Process.Pid)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(done); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the busy child did not finish")
		}
	}
	if u := m.finish(); u.cpu < 50*time.Millisecond {
		t.Errorf("meter: %v CPU; want the busy child's (at least 50ms)", u.cpu)
	}
}

// TestWarmProgress: a run's figures are those of its -P 1 intervals after the warm-up.
func TestWarmProgress(t *testing.T) {
	out := `progress: 1.0 s, 5000.0 tps, lat 1.600 ms stddev 0.1, 0 failed
progress: 2.0 s, 9000.0 tps, lat 0.900 ms stddev 0.1, 0 failed
progress: 3.0 s, 10000.0 tps, lat 0.800 ms stddev 0.1, 0 failed
progress: 4.0 s, 30000.0 tps, lat 0.200 ms stddev 0.1, 0 failed
tps = 13500.0 (without initial connection time)
`
	s := sample{tps: 13500}
	if err := warmProgress(&s, out, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if s.tps != 20000 || s.txns != 40000 || s.latency != (10000*0.8+30000*0.2)/40000 {
		t.Errorf("after a 2s warm-up: %v tps, %v txns, %v ms; want 20000, 40000, 0.35", s.tps, s.txns, s.latency)
	}
	if err := warmProgress(&s, out, 4*time.Second); err == nil {
		t.Error("no interval after the warm-up: no error")
	}
}

// TestRunOrder: every path runs once a round, compared runs are adjacent, and the order
// reverses every other round.
func TestRunOrder(t *testing.T) {
	all := []path{{name: pDirect}, {name: pBouncer}, {name: pBouncerCold}, {name: pPglink}, {name: pBouncerTLS}, {name: pBouncerTLSc}, {name: pPglinkTLS}}
	names := func(ps []path) (out []string) {
		for _, p := range ps {
			out = append(out, p.name)
		}
		return out
	}
	r1, r2 := names(runOrder(all, 1)), names(runOrder(all, 2))
	if len(r1) != len(all) || !slices.Equal(r1, []string{pDirect, pPglink, pBouncer, pBouncerCold, pBouncerTLSc, pBouncerTLS, pPglinkTLS}) {
		t.Errorf("round 1: %v", r1)
	}
	if slices.Reverse(r2); !slices.Equal(r1, r2) {
		t.Errorf("round 2 reversed: %v; want round 1's order", r2)
	}
	some := names(runOrder([]path{{name: pPglinkTLS}, {name: pBouncer}, {name: pPglink}}, 1))
	if !slices.Equal(some, []string{pPglink, pBouncer, pPglinkTLS}) {
		t.Errorf("a selection: %v", some)
	}
}
