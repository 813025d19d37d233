package main

import (
	"os"
	"os/exec"
	"path/filepath"
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
