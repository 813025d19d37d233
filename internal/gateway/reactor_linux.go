package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The reactor relays sessions the way PgBouncer does: one goroutine waits on its own epoll set
// for every session's two sockets and moves the bytes with direct read and write system calls.
// Go's netpoller would cost, per message, a goroutine wake-up, a speculative read that fails
// with EAGAIN and often a futex wake of another thread; on a 2-vCPU machine where every system
// call and wake-up is expensive that doubled the cost of a round trip. Here a round trip costs
// what it costs PgBouncer: per direction one epoll_wait, one read, one write, and under load
// one epoll_wait serves many sessions.
//
// The sockets leave Go's netpoller: the session's goroutine duplicates their descriptors,
// closes the Go connections and hands the duplicates to the reactor, then waits until the
// reactor is done with the session. Reads and writes never block (the descriptors are
// non-blocking), so they are raw system calls that keep the goroutine's P, and so is the wait
// for events while the loop is busy (see wait).
//
// The loop has an OS thread of its own (runtime.LockOSThread), which the kernel schedules as a
// batch thread (batchThread): woken by an event, it does not preempt the database or the
// clients, and so under load it handles several sessions per wake-up.
//
// A TLS session keeps its crypto/tls.Conn, negotiated by the session's goroutine; the loop
// reads and writes it through its tlsTransport, whose reads never block and whose writes
// queue ciphertext for the loop to send. Revocation works on the plaintext, as for a plain
// session, and its ErrorResponse goes inside the TLS stream.
//
// Level-triggered epoll: a session reads both sockets; when a write comes up short, the rest
// waits in a pooled buffer, reading from the other side stops and the reactor waits until the
// socket is writable (back-pressure). Idle sessions hold no buffer.

const (
	maxEvents  = 256
	flushGrace = 5 * time.Second       // how long a closing session may take to flush to its client
	holdP      = 10 * time.Millisecond // how long the loop waits for events without releasing its P
	yieldEvery = time.Millisecond      // how often a busy loop lets other goroutines run on its P
)

type cmdKind int

const (
	cmdAdd cmdKind = iota
	cmdRevoke
	cmdKill
	cmdStop
	cmdDetach // hand every session over (handoff_linux.go)
	cmdAdopt  // relay a session handed over by a predecessor
)

type rcmd struct {
	kind cmdKind
	s    *rsess
	out  chan<- []detached // cmdDetach's answer
}

// reactor is one event loop. Its goroutine is owned by the Gateway and ends on stop.
type reactor struct {
	epfd         int
	wakeR, wakeW int // a pipe that wakes the loop for commands
	log          *slog.Logger

	mu      sync.Mutex
	queue   []rcmd // guarded by mu
	stopped bool   // guarded by mu

	// Owned by the loop goroutine.
	byFd    map[int32]*rsess
	timed   map[*rsess]struct{} // sessions with a deadline
	again   []*rsess            // TLS sessions to read from without waiting for epoll
	spare   []*rsess            // again's other buffer
	buf     []byte
	yielded time.Time // when the loop last let other goroutines run
	// runnable is read by yield: the runtime's count of goroutines waiting to run.
	runnable [1]metrics.Sample
	index    int     // the loop's number among the gateway's
	pin      pinning // see pin_linux.go
}

// rsess is a session relayed by the reactor. Fields are owned by the loop goroutine, except
// c, cfd, ufd and done, which are set before it is handed over.
type rsess struct {
	r        *reactor
	c        *conn
	cfd, ufd int
	done     chan struct{} // closed by the loop when the sockets are closed

	toUp, toCl *[]byte // pending output, pooled; nil when none
	upOff      int     // bytes of toUp already written
	clOff      int     // bytes of toCl already written
	f          framer
	cEv, uEv   uint32    // current epoll interest of cfd and ufd
	revoked    bool      // revocation in progress
	finishing  bool      // close once toCl is flushed
	deadline   time.Time // zero: none
	closed     bool

	// A TLS session's client side: toCl holds ciphertext, which tc writes through its
	// tlsTransport. tc may hold input that epoll does not report; the session is then queued
	// in reactor.again.
	tc      *tls.Conn // nil for a plain session
	drained bool      // the client socket had nothing more to read since the last event
	queued  bool      // in reactor.again
}

func newReactor(log *slog.Logger, index int) (*reactor, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	r := &reactor{epfd: epfd, wakeR: p[0], wakeW: p[1], log: log, index: index,
		byFd: map[int32]*rsess{}, timed: map[*rsess]struct{}{}, buf: make([]byte, relayBufSize)}
	r.runnable[0].Name = "/sched/goroutines/runnable:goroutines"
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, r.wakeR, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(r.wakeR)}); err != nil {
		r.closeFds()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return r, nil
}

func (r *reactor) closeFds() {
	syscall.Close(r.epfd)
	syscall.Close(r.wakeR)
	syscall.Close(r.wakeW)
}

// post queues a command for the loop; false if the reactor has stopped. The wake-up is
// written under mu, and the loop closes the pipe under mu after stop, so post never writes to
// a descriptor that was closed (and perhaps reused).
func (r *reactor) post(k cmdKind, s *rsess) bool { return r.postCmd(rcmd{kind: k, s: s}) }

func (r *reactor) postCmd(cmd rcmd) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	if cmd.kind == cmdStop {
		r.stopped = true
	}
	r.queue = append(r.queue, cmd)
	if len(r.queue) == 1 {
		var b = [1]byte{1}
		rawWrite(r.wakeW, b[:]) // EAGAIN: the pipe is full, so a wake-up is pending anyway
	}
	return true
}

// stop makes the loop close every session and return.
func (r *reactor) stop() { r.post(cmdStop, nil) }

// handoff moves the session's sockets (and TLS state) to the reactor and waits until it is
// done with them. It reports false, having changed nothing, if the sockets cannot be moved;
// the caller then relays with goroutines.
func (r *reactor) handoff(c *conn, up *net.UnixConn) bool {
	cfd, err := dupFd(c.raw)
	if err != nil {
		return false
	}
	ufd, err := dupFd(up)
	if err != nil {
		syscall.Close(cfd)
		return false
	}
	s := &rsess{r: r, c: c, cfd: cfd, ufd: ufd, done: make(chan struct{})}
	if c.tls != nil {
		s.tc = c.tls
		c.tt.s = s // from here on the loop reads and writes the TLS session
	}
	c.mu.Lock()
	c.rs = s
	c.mu.Unlock()
	// The duplicates keep the sockets open; Go's copies leave its netpoller.
	c.raw.Close()
	up.Close()
	if !r.post(cmdAdd, s) {
		syscall.Close(cfd)
		syscall.Close(ufd)
		return true
	}
	<-s.done
	return true
}

// kill and revoke are called by conn (any goroutine).
func (s *rsess) kill()   { s.r.post(cmdKill, s) }
func (s *rsess) revoke() { s.r.post(cmdRevoke, s) }

// dupFd duplicates the descriptor of a Go connection (close-on-exec, still non-blocking).
func dupFd(sc syscall.Conn) (int, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		nfd, errno = int(r), e
	}); err != nil {
		return -1, err
	}
	if errno != 0 {
		return -1, fmt.Errorf("dup: %w", errno)
	}
	return nfd, nil
}

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// wait returns ready events, waiting until there are some or the next deadline.
//
// While the loop is busy it keeps its P: it waits with a raw epoll_wait, which the runtime
// sees as running Go code, bounded by holdP. A blocking system call would release the P on
// every wait and have sysmon retake it, which resets sysmon's back-off to 20 µs and costs a
// context switch per round trip, and moves the loop between threads. Preemption and garbage
// collection are not held up: their signals end the raw wait at once (EINTR), and every
// yieldEvery the loop yields if goroutines wait to run (yield). Only after holdP without an
// event does the loop wait with a blocking epoll_wait that releases the P, so that an idle
// gateway costs nothing. holdP is the runtime's own time slice (sysmon preempts a goroutine
// after 10 ms): gaps of a few milliseconds between events are common under load (64 clients
// waiting for PostgreSQL), and with a shorter hold each of them cost a blocking wait, which
// let sysmon retake the P (resetting its back-off: dozens of wake-ups) and hand it to another
// thread.
func (r *reactor) wait(ev []syscall.EpollEvent) int {
	timeout := -1 // ms
	if len(r.timed) > 0 {
		next := time.Time{}
		for s := range r.timed {
			if next.IsZero() || s.deadline.Before(next) {
				next = s.deadline
			}
		}
		timeout = max(int(time.Until(next)/time.Millisecond)+1, 0)
	}
	if len(r.again) > 0 {
		timeout = 0
	}
	if now := time.Now(); now.Sub(r.yielded) >= yieldEvery {
		r.yield()
		r.yielded = now
	}
	hold := int(holdP / time.Millisecond)
	if timeout >= 0 && timeout < hold {
		hold = timeout
	}
	n, e := rawEpollWait(r.epfd, ev, hold)
	if e != 0 || n > 0 || hold == timeout {
		return n // EINTR: back to the loop, which comes back here
	}
	if timeout > 0 {
		timeout -= hold
	}
	n, err := syscall.EpollWait(r.epfd, ev, timeout)
	if err != nil {
		return 0 // EINTR
	}
	r.yielded = time.Now()
	return n
}

// yield lets other goroutines run on the loop's P, if there are any that wait to run.
//
// runtime.Gosched is not free even when nothing else waits: it puts the loop on the global run
// queue and wakes an idle P's thread to look for work, and as the loop is locked to its thread
// the P goes to another thread and back; each costs futex calls and context switches. So the loop yields only when the scheduler reports runnable goroutines
// (reading that count takes the scheduler's lock briefly, and allocates nothing). Goroutines
// that the loop makes runnable (a session's goroutine when the session ends) are also stolen
// by an idle P, which the runtime wakes for them; timers on the loop's P fire on the other Ps
// (they poll every P's timers when idle); and the runtime preempts the loop after 10 ms
// without a yield (sysmon), as any goroutine, so it never holds its P for longer.
func (r *reactor) yield() {
	metrics.Read(r.runnable[:])
	if v := r.runnable[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() == 0 {
		return
	}
	runtime.Gosched()
}

// batchThread makes the kernel schedule the calling thread as SCHED_BATCH, keeping its nice
// value. A batch thread that wakes does not preempt the thread running on its CPU (the
// database, the clients): under load the loop runs a little later and then finds several
// sessions ready, instead of preempting for each one. That saves context switches on every
// side; when a CPU is idle the loop runs at once, as before. The policy is per thread, hence
// the loop's locked thread.
func batchThread() error {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return err
	}
	attr.Policy = unix.SCHED_BATCH
	return unix.SchedSetAttr(0, attr, 0)
}

// send writes p to fd, one of s's sockets, and returns how much went out: 0 when the socket
// is full. On any other error it ends s (what says which write failed) and reports false.
func (r *reactor) send(s *rsess, fd int, p []byte, what string) (int, bool) {
	w, e := rawWrite(fd, p)
	switch e {
	case 0:
		return w, true
	case syscall.EAGAIN:
		return 0, true
	}
	s.endErr(what, e)
	r.close(s)
	return 0, false
}

// rawEpollWait is epoll_wait without telling the scheduler: the goroutine keeps its P.
func rawEpollWait(epfd int, ev []syscall.EpollEvent, ms int) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&ev[0])),
		uintptr(len(ev)), uintptr(ms), 0, 0)
	return int(n), e
}

// run is the loop. It keeps its OS thread (never unlocked: the thread ends with the loop,
// with the scheduling policy that batchThread gave it).
func (r *reactor) run() {
	runtime.LockOSThread()
	if err := batchThread(); err != nil {
		r.log.Debug("event loop: no batch scheduling", "err", err)
	}
	r.initPin()
	defer func() {
		r.mu.Lock()
		r.closeFds()
		r.mu.Unlock()
	}()
	ev := make([]syscall.EpollEvent, maxEvents)
	for {
		n := r.wait(ev)
		for i := range n {
			fd := ev[i].Fd
			if fd == int32(r.wakeR) {
				if r.commands() {
					return
				}
				continue
			}
			s := r.byFd[fd]
			if s == nil {
				continue // closed earlier in this batch
			}
			if int(fd) == s.cfd {
				r.clientReady(s, ev[i].Events)
			} else {
				r.upReady(s, ev[i].Events)
			}
		}
		if len(r.again) > 0 {
			again := r.again
			r.again = r.spare
			for _, s := range again {
				s.queued = false
				if !s.closed && s.cEv&syscall.EPOLLIN != 0 {
					r.readClientTLS(s)
				}
			}
			clear(again)
			r.spare = again[:0]
		}
		if len(r.timed) > 0 {
			now := time.Now()
			for s := range r.timed {
				if !s.deadline.After(now) {
					r.close(s)
				}
			}
		}
		r.repin()
	}
}

// commands runs the queued commands; true when the loop must stop.
func (r *reactor) commands() bool {
	var b [64]byte
	for {
		if n, _ := rawRead(r.wakeR, b[:]); n < len(b) {
			break
		}
	}
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.mu.Unlock()
	for _, cmd := range q {
		s := cmd.s
		switch cmd.kind {
		case cmdAdd:
			r.add(s)
		case cmdRevoke:
			if r.byFd[int32(s.cfd)] == s {
				r.revoke(s)
			}
		case cmdKill:
			if r.byFd[int32(s.cfd)] == s {
				r.close(s)
			}
		case cmdDetach:
			cmd.out <- r.detachAll()
		case cmdAdopt:
			r.adopt(s)
		case cmdStop:
			for _, s := range r.byFd {
				s.c.setEnd("gateway closed")
				r.close(s)
			}
			return true
		}
	}
	return false
}

func (r *reactor) add(s *rsess) {
	s.cEv, s.uEv = syscall.EPOLLIN, syscall.EPOLLIN
	err1 := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, s.cfd, &syscall.EpollEvent{Events: s.cEv, Fd: int32(s.cfd)})
	err2 := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, s.ufd, &syscall.EpollEvent{Events: s.uEv, Fd: int32(s.ufd)})
	r.byFd[int32(s.cfd)], r.byFd[int32(s.ufd)] = s, s
	if err := errors.Join(err1, err2); err != nil {
		s.c.setEnd(fmt.Sprintf("epoll_ctl: %v", err))
		r.close(s)
		return
	}
	// A kill or revocation that came before the session was added.
	if s.c.killed.Load() {
		r.close(s)
	} else if s.c.revoked.Load() != nil {
		r.revoke(s)
	} else if s.tc != nil {
		r.readAgain(s) // crypto/tls may have read ahead during the negotiation
	}
}

// interest sets the epoll events of fd (cfd or ufd of s) to ev. A socket with no interest
// leaves the epoll set, so that a peer's hang-up, which epoll reports whatever the interest,
// does not wake the loop while the session is not ready to handle it.
func (r *reactor) interest(s *rsess, fd int, ev uint32) {
	if s.closed {
		return
	}
	cur := &s.cEv
	if fd == s.ufd {
		cur = &s.uEv
	}
	if *cur == ev {
		return
	}
	op := syscall.EPOLL_CTL_MOD
	switch {
	case ev == 0:
		op = syscall.EPOLL_CTL_DEL
	case *cur == 0:
		op = syscall.EPOLL_CTL_ADD
	}
	*cur = ev
	if err := syscall.EpollCtl(r.epfd, op, fd, &syscall.EpollEvent{Events: ev, Fd: int32(fd)}); err != nil {
		s.c.setEnd(fmt.Sprintf("epoll_ctl: %v", err))
		r.close(s)
	}
}

func (r *reactor) setDeadline(s *rsess, d time.Duration) {
	s.deadline = time.Now().Add(d)
	r.timed[s] = struct{}{}
}

// close closes both sockets and releases the session's goroutine.
func (r *reactor) close(s *rsess) {
	if s.closed {
		return
	}
	s.closed = true
	delete(r.byFd, int32(s.cfd))
	delete(r.byFd, int32(s.ufd))
	delete(r.timed, s)
	if s.cEv != 0 {
		syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, s.cfd, nil)
	}
	if s.uEv != 0 {
		syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, s.ufd, nil)
	}
	syscall.Close(s.cfd)
	syscall.Close(s.ufd)
	if s.toUp != nil {
		release(s.toUp)
		s.toUp = nil
	}
	if s.toCl != nil {
		release(s.toCl)
		s.toCl = nil
	}
	close(s.done)
}

// endErr records why the session ends, for an errno from side.
func (s *rsess) endErr(what string, e syscall.Errno) {
	s.c.setEnd(fmt.Sprintf("%s: %v", what, e))
}

// clientReady handles events on the client socket.
func (r *reactor) clientReady(s *rsess, ev uint32) {
	if ev&syscall.EPOLLOUT != 0 && s.toCl != nil {
		r.flushClient(s)
		if s.closed {
			return
		}
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 || s.cEv&syscall.EPOLLIN == 0 {
		return
	}
	if s.tc != nil {
		r.readClientTLS(s)
		return
	}
	n, e := rawRead(s.cfd, r.buf)
	switch {
	case e == syscall.EAGAIN || e == syscall.EINTR:
		return
	case e != 0:
		s.endErr("read from client", e)
		r.close(s)
		return
	case n == 0:
		s.c.setEnd("client closed")
		r.close(s)
		return
	}
	s.c.bytesIn.Add(uint64(n))
	r.toServer(s, r.buf[:n])
}

// readClientTLS reads and decrypts what the client sent, until the socket has no more or the
// buffer is full, and relays it to the server.
func (r *reactor) readClientTLS(s *rsess) {
	s.drained = false
	n := 0
	var err error
	for n < len(r.buf) && err == nil {
		var k int
		k, err = s.tc.Read(r.buf[n:])
		n += k
	}
	// Reading may have queued output: the answer to a KeyUpdate, an alert.
	r.pushClient(s)
	if s.closed {
		return
	}
	if n > 0 {
		s.c.bytesIn.Add(uint64(n))
		r.toServer(s, r.buf[:n])
		if s.closed {
			return
		}
	}
	switch {
	case err == nil:
		r.readAgain(s) // the buffer is full; crypto/tls may hold more
	case err == errWouldBlock:
	case errors.Is(err, io.EOF):
		s.c.setEnd("client closed")
		r.close(s)
	default:
		s.c.setEnd(fmt.Sprintf("read from client: %v", err))
		r.close(s)
	}
}

// readAgain queues a TLS session to be read from after this round of events, whether or not
// epoll reports its socket readable.
func (r *reactor) readAgain(s *rsess) {
	if !s.queued {
		s.queued = true
		r.again = append(r.again, s)
	}
}

// toServer writes p to the server; what does not fit waits, and reading from the client stops
// until it is written.
func (r *reactor) toServer(s *rsess, p []byte) {
	w, ok := r.send(s, s.ufd, p, "write to server")
	if !ok {
		return
	}
	if w < len(p) {
		s.toUp = relayBufs.Get().(*[]byte)
		s.upOff = 0
		*s.toUp = append((*s.toUp)[:0], p[w:]...)
		// Stop reading the client, but keep flushing to it whatever is pending.
		r.interest(s, s.cfd, s.cEv&^syscall.EPOLLIN)
		r.interest(s, s.ufd, s.uEv|syscall.EPOLLOUT)
	}
}

// upReady handles events on the server socket.
func (r *reactor) upReady(s *rsess, ev uint32) {
	if ev&syscall.EPOLLOUT != 0 && s.toUp != nil {
		w, ok := r.send(s, s.ufd, (*s.toUp)[s.upOff:], "write to server")
		if !ok {
			return
		}
		s.upOff += w
		if s.upOff == len(*s.toUp) {
			release(s.toUp)
			s.toUp = nil
			r.interest(s, s.ufd, s.uEv&^syscall.EPOLLOUT)
			if !s.revoked {
				r.interest(s, s.cfd, s.cEv|syscall.EPOLLIN)
				if s.tc != nil {
					r.readAgain(s)
				}
			}
		}
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 || s.uEv&syscall.EPOLLIN == 0 {
		return
	}
	n, e := rawRead(s.ufd, r.buf)
	if e == syscall.EAGAIN || e == syscall.EINTR {
		return
	}
	if e != 0 || n == 0 {
		switch {
		case s.revoked && s.f.atBoundary():
			r.finish(s, revocation(s.c.revoked.Load()))
		case s.revoked:
			r.close(s)
		default:
			if e != 0 {
				s.endErr("read from server", e)
			} else {
				s.c.setEnd("server closed")
			}
			r.finish(s, nil)
		}
		return
	}
	p := r.buf[:n]
	cut := s.f.feed(p)
	if s.revoked {
		if cut < 0 {
			r.toClient(s, p) // still inside the message the revocation interrupted
			return
		}
		r.toClient(s, p[:cut])
		if !s.closed {
			r.finish(s, revocation(s.c.revoked.Load()))
		}
		return
	}
	r.toClient(s, p)
}

// toClient writes p to the client, keeping what does not fit.
func (r *reactor) toClient(s *rsess, p []byte) {
	if len(p) == 0 {
		return
	}
	s.c.bytesOut.Add(uint64(len(p)))
	if s.tc != nil {
		if _, err := s.tc.Write(p); err != nil {
			s.c.setEnd(fmt.Sprintf("write to client: %v", err))
			r.close(s)
			return
		}
		r.pushClient(s)
		return
	}
	if s.toCl != nil {
		*s.toCl = append(*s.toCl, p...)
		return
	}
	w, ok := r.send(s, s.cfd, p, "write to client")
	if !ok {
		return
	}
	if w < len(p) {
		s.toCl = relayBufs.Get().(*[]byte)
		s.clOff = 0
		*s.toCl = append((*s.toCl)[:0], p[w:]...)
		r.interest(s, s.ufd, s.uEv&^syscall.EPOLLIN)
		r.interest(s, s.cfd, s.cEv|syscall.EPOLLOUT)
	}
}

// pushClient writes the output that a TLS session queued to the client, unless it already
// waits for the socket to be writable. What does not fit waits for EPOLLOUT, and reading from
// the server stops meanwhile.
func (r *reactor) pushClient(s *rsess) {
	if s.toCl == nil || s.cEv&syscall.EPOLLOUT != 0 || s.closed {
		return
	}
	w, ok := r.send(s, s.cfd, (*s.toCl)[s.clOff:], "write to client")
	if !ok {
		return
	}
	s.clOff += w
	if s.clOff == len(*s.toCl) {
		release(s.toCl)
		s.toCl = nil
		return
	}
	r.interest(s, s.ufd, s.uEv&^syscall.EPOLLIN)
	r.interest(s, s.cfd, s.cEv|syscall.EPOLLOUT)
}

// flushClient writes pending output to the client.
func (r *reactor) flushClient(s *rsess) {
	w, ok := r.send(s, s.cfd, (*s.toCl)[s.clOff:], "write to client")
	if !ok {
		return
	}
	s.clOff += w
	if s.clOff < len(*s.toCl) {
		return
	}
	release(s.toCl)
	s.toCl = nil
	if s.finishing {
		r.close(s)
		return
	}
	r.interest(s, s.cfd, s.cEv&^syscall.EPOLLOUT)
	if !s.revoked || !s.f.atBoundary() {
		r.interest(s, s.ufd, s.uEv|syscall.EPOLLIN)
	}
}

// finish sends last (if any) after what is pending, and with TLS a close_notify alert, then
// closes the session; a client that does not take it within the grace period is cut off.
func (r *reactor) finish(s *rsess, last []byte) {
	s.finishing = true
	r.interest(s, s.ufd, 0)
	r.interest(s, s.cfd, s.cEv&^syscall.EPOLLIN)
	if s.tc != nil && !s.closed {
		// last, then a close_notify alert, inside the TLS stream.
		if len(last) > 0 {
			s.c.bytesOut.Add(uint64(len(last)))
			s.tc.Write(last)
		}
		s.tc.CloseWrite()
		r.pushClient(s)
	} else {
		r.toClient(s, last)
	}
	if s.closed {
		return
	}
	if s.toCl == nil {
		r.close(s)
		return
	}
	grace := flushGrace
	if s.revoked {
		grace = revokeGrace
	}
	r.setDeadline(s, grace)
}

// revoke ends a session that the policy no longer admits: its ErrorResponse at the next
// message boundary, within revokeGrace, else a plain close. Nothing more goes to the server.
func (r *reactor) revoke(s *rsess) {
	if s.revoked || s.closed {
		return
	}
	s.revoked = true
	if s.toUp != nil {
		release(s.toUp)
		s.toUp = nil
	}
	r.interest(s, s.cfd, s.cEv&^syscall.EPOLLIN)
	if s.closed {
		return
	}
	if s.f.atBoundary() {
		r.finish(s, revocation(s.c.revoked.Load()))
		return
	}
	// Mid-message: read on to the end of the message, unless the client is behind, in which
	// case flushClient resumes reading once it has caught up.
	ev := uint32(0)
	if s.toCl == nil {
		ev = syscall.EPOLLIN
	}
	r.interest(s, s.ufd, ev)
	if !s.closed {
		r.setDeadline(s, revokeGrace)
	}
}

// Read reads the client socket for crypto/tls: in the event loop a raw read that reports
// errWouldBlock when there is nothing (more) to read.
func (t *tlsTransport) Read(p []byte) (int, error) {
	s := t.s
	if s == nil {
		return t.Conn.Read(p)
	}
	if s.drained {
		return 0, errWouldBlock
	}
	n, e := rawRead(s.cfd, p)
	switch {
	case e == syscall.EAGAIN || e == syscall.EINTR:
		s.drained = true // level-triggered epoll reports the socket again if there is more
		return 0, errWouldBlock
	case e != 0:
		return 0, os.NewSyscallError("read", e)
	case n == 0:
		return 0, io.EOF
	}
	if n < len(p) {
		s.drained = true // the socket is empty for now: no read that would only fail
	}
	return n, nil
}

// Write takes ciphertext from crypto/tls: in the event loop it queues it as the session's
// output to the client, for the loop to write (pushClient, flushClient). It never fails.
func (t *tlsTransport) Write(p []byte) (int, error) {
	s := t.s
	if s == nil {
		return t.Conn.Write(p)
	}
	if s.toCl == nil {
		s.toCl = relayBufs.Get().(*[]byte)
		*s.toCl = (*s.toCl)[:0]
		s.clOff = 0
	}
	*s.toCl = append(*s.toCl, p...)
	return len(p), nil
}
