package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sysmonCounter counts the wake-ups of the Go runtime's sysmon thread of this process. sysmon
// is the first thread the runtime starts and sleeps in nanosleep between its checks, so each
// of its wake-ups is one voluntary context switch of that thread
// (/proc/self/task/TID/status). The thread is the lowest TID other than the main thread's
// among those found in nanosleep (system call 35 on amd64, 101 on arm64).
type sysmonCounter struct {
	tid   string
	start int64
	at    time.Time
}

func startSysmonCounter() *sysmonCounter {
	tid := sysmonTID("self")
	if tid == "" {
		return nil
	}
	return &sysmonCounter{tid: tid, start: voluntarySwitches("self", tid), at: time.Now()}
}

// perSecond returns the wake-ups per second since the counter started; 0 if unknown.
func (c *sysmonCounter) perSecond() float64 {
	if c == nil {
		return 0
	}
	return float64(voluntarySwitches("self", c.tid)-c.start) / time.Since(c.at).Seconds()
}

func sysmonTID(pid string) string {
	dirs, _ := filepath.Glob(filepath.Join("/proc", pid, "task", "*"))
	var tids []int
	for _, d := range dirs {
		if n, err := strconv.Atoi(filepath.Base(d)); err == nil {
			tids = append(tids, n)
		}
	}
	slices.Sort(tids)
	if len(tids) < 2 {
		return ""
	}
	for range 20 {
		for _, tid := range tids[1:] {
			b, _ := os.ReadFile(filepath.Join("/proc", pid, "task", strconv.Itoa(tid), "syscall"))
			if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "35" || f[0] == "101") {
				return strconv.Itoa(tid)
			}
		}
		time.Sleep(time.Millisecond)
	}
	return strconv.Itoa(tids[1])
}

func voluntarySwitches(pid, tid string) int64 {
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "task", tid, "status"))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
