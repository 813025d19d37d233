package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pgMeter measures what the server's PostgreSQL (the postmaster, its backends and its
// background processes) uses during a run. CPU time is exact: the postmaster's own and that of
// the children it has reaped (cutime, cstime), plus its live children's. Backends take their
// context switch counters with them when they exit, so those are sampled every sampleEvery:
// each process counts with its last sample (a backend that exits loses at most that much).
type pgMeter struct {
	postmaster int
	cpu0       time.Duration
	base       map[int]int64 // each child's context switches when the run began
	stop, done chan struct{}

	mu   sync.Mutex
	last map[int]int64 // each child's context switches when last seen
}

const sampleEvery = 100 * time.Millisecond

// postmasterPID reads the postmaster's PID from the lock file of its socket in socketDir.
func postmasterPID(socketDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(socketDir, ".s.PGSQL.5432.lock"))
	if err != nil {
		return 0, fmt.Errorf("postmaster: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("postmaster: lock file %q: %w", line, err)
	}
	return pid, nil
}

// startPgMeter begins measuring postmaster's tree; 0 measures nothing (stop returns zero).
func startPgMeter(postmaster int) *pgMeter {
	m := &pgMeter{postmaster: postmaster, base: map[int]int64{}, last: map[int]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if postmaster == 0 {
		close(m.done)
		return m
	}
	m.cpu0 = m.cpu()
	for _, pid := range children(postmaster) {
		m.base[pid] = procUsage(pid).switches
	}
	go func() {
		defer close(m.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *pgMeter) sample() {
	for _, pid := range children(m.postmaster) {
		n := procUsage(pid).switches
		m.mu.Lock()
		if n > m.last[pid] {
			m.last[pid] = n
		}
		m.mu.Unlock()
	}
}

// finish ends the measurement once the backends of the run have exited (or a second has
// passed) and returns what the tree used since startPgMeter.
func (m *pgMeter) finish() usage {
	if m.postmaster == 0 {
		return usage{}
	}
	m.sample()
	close(m.stop)
	<-m.done
	// The run's backends exit when their clients do: wait until the postmaster has reaped
	// them, or until its children stop changing (PgBouncer's stay), at most a second.
	prev, since := -1, time.Now()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := len(children(m.postmaster))
		if n <= len(m.base) || n == prev && time.Since(since) >= 100*time.Millisecond {
			break
		}
		if n != prev {
			prev, since = n, time.Now()
		}
	}
	u := usage{cpu: m.cpu() - m.cpu0}
	for pid, n := range m.last {
		u.switches += n - m.base[pid]
	}
	return u
}

// cpu is the postmaster's CPU time with its reaped children's and its live children's. A
// child reaped between the two reads would be counted in neither, or twice: the reads are
// repeated until the postmaster's count did not change across them.
func (m *pgMeter) cpu() time.Duration {
	own := func() time.Duration {
		f := statFields(m.postmaster)
		if len(f) < 15 {
			return 0
		}
		var ticks int64
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
		return time.Duration(ticks) * time.Second / clockTicks
	}
	for range 10 {
		before := own()
		d := before
		for _, pid := range children(m.postmaster) {
			d += procUsage(pid).cpu
		}
		if own() == before {
			return d
		}
	}
	return 0
}

// statFields returns the fields of /proc/pid/stat after the command name (state first).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	return strings.Fields(string(b)[i+1:])
}

// children returns the PIDs of parent's live child processes.
func children(parent int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.Itoa(parent)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 && f[1] == want { // field 4, ppid
			out = append(out, pid)
		}
	}
	return out
}
