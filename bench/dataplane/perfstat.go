package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// With -perf, each run through a proxy is watched by `perf stat` on the proxy's process, which
// counts the system calls that relay bytes and wait for them, the futex calls and sleeps of
// the Go runtime, context switches and migrations between CPUs: per transaction these are
// steadier than CPU time on a loaded machine.
var perfEvents = []struct{ event, name string }{
	{"syscalls:sys_enter_epoll_wait", "epoll"},
	{"syscalls:sys_enter_epoll_pwait", "epoll"},
	{"syscalls:sys_enter_read", "read"},
	{"syscalls:sys_enter_recvfrom", "read"},
	{"syscalls:sys_enter_write", "write"},
	{"syscalls:sys_enter_sendto", "write"},
	{"syscalls:sys_enter_epoll_ctl", "epoll_ctl"},
	{"syscalls:sys_enter_futex", "futex"},
	{"syscalls:sys_enter_nanosleep", "nanosleep"},
	{"syscalls:sys_enter_sched_yield", "yield"},
	{"context-switches", "cs"},
	{"cpu-migrations", "migrations"},
}

// perfStat is a running `perf stat`.
type perfStat struct {
	cmd *exec.Cmd
	out string
}

// startPerf starts counting pid's events; nil (and no error) if perf is not installed.
func startPerf(dir string, pid int) (*perfStat, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, nil
	}
	out := filepath.Join(dir, "perf.csv")
	var evs []string
	for _, e := range perfEvents {
		evs = append(evs, e.event)
	}
	cmd := exec.Command(bin, "stat", "-x", ",", "-o", out, "-e", strings.Join(evs, ","), "-p", strconv.Itoa(pid))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf stat: %w", err)
	}
	return &perfStat{cmd: cmd, out: out}, nil
}

// stop ends the count and returns the counts by name (events with the same name added up).
func (p *perfStat) stop() map[string]int64 {
	if p == nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
	b, err := os.ReadFile(p.out)
	if err != nil {
		return nil
	}
	counts := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		for _, e := range perfEvents {
			if e.event == f[2] {
				counts[e.name] += n
			}
		}
	}
	return counts
}

// perfLine formats counts per transaction.
func perfLine(counts map[string]int64, txns int64) string {
	if len(counts) == 0 || txns == 0 {
		return ""
	}
	var parts []string
	seen := map[string]bool{}
	for _, e := range perfEvents {
		if seen[e.name] {
			continue
		}
		seen[e.name] = true
		parts = append(parts, fmt.Sprintf("%s %.2f", e.name, float64(counts[e.name])/float64(txns)))
	}
	return strings.Join(parts, " ")
}
