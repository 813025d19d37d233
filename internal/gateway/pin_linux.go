package gateway

import "golang.org/x/sys/unix"

// An event loop that relays several sessions is busy all the time, and runs faster on a CPU
// of its own than wherever the kernel puts it after each wait: measured on 2 vCPUs, 8 clients,
// plaintext, steady state, +11 % TPS (median of 10 interleaved pairs, 9 better), with TLS
// +8 %, at 64 clients better too. One client's round trips are serial, and there the loop does
// as well or better where the kernel wakes it. So a loop keeps its thread on its CPU from the
// moment it holds pinFrom sessions until it holds none (the gap keeps short-lived sessions
// from moving it back and forth).
const pinFrom = 2

// pinning is a loop's CPU affinity. Owned by the loop goroutine, on its locked thread.
type pinning struct {
	cpu     int         // the CPU the loop keeps while busy; -1 for none
	allowed unix.CPUSet // the thread's CPUs when it is not pinned
	pinned  bool
}

// initPin picks the loop's CPU: loop i of a thread allowed CPUs c[0] < … < c[n-1] takes
// c[n-1-i mod n], the last ones first (CPU 0 takes most device interrupts). With one CPU
// allowed there is nothing to pick.
func (r *reactor) initPin() {
	r.pin.cpu = -1
	if err := unix.SchedGetaffinity(0, &r.pin.allowed); err != nil {
		r.log.Debug("event loop: no CPU affinity", "err", err)
		return
	}
	var cpus []int
	for c := range len(r.pin.allowed) * 64 {
		if r.pin.allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		return
	}
	r.pin.cpu = cpus[len(cpus)-1-r.index%len(cpus)]
}

// repin pins or unpins the loop's thread for the number of sessions it holds now.
func (r *reactor) repin() {
	n := len(r.byFd) / 2
	want := r.pin.pinned
	switch {
	case n >= pinFrom:
		want = true
	case n == 0:
		want = false
	}
	if want == r.pin.pinned || r.pin.cpu < 0 {
		return
	}
	set := r.pin.allowed
	if want {
		set.Zero()
		set.Set(r.pin.cpu)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		r.log.Debug("event loop: set CPU affinity", "cpu", r.pin.cpu, "pin", want, "err", err)
		if !r.pin.pinned {
			r.pin.cpu = -1 // not allowed there (a cpuset changed): stay where the kernel puts it
		}
		return
	}
	r.pin.pinned = want
}
