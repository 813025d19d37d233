package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/gateway/remote"
)

// gate is the data plane as the server drives it: the gateway in this process, or a gateway
// process (gatewayProc).
type gate interface {
	Apply(s gateway.Snapshot) error
	WaitApplied(ctx context.Context, rev int64) error
	Stats() gateway.Stats
	// ServerSessions returns the open sessions of the server with ARM ID server.
	ServerSessions(ctx context.Context, server string) ([]gateway.SessionInfo, error)
	Close() error
}

var _ gate = (*gateway.Gateway)(nil)

// Supervision timings of a gateway process.
const (
	gatewayStartWait = 15 * time.Second       // how long a new gateway process may take to answer
	gatewayPing      = 500 * time.Millisecond // how often the gateway is checked
	gatewayCallWait  = 10 * time.Second       // bound of one request from Apply or Stats
)

// gatewayProc drives a gateway process (`pglink gateway`) over its control socket. It
// attaches to the one that runs for the data dir or starts one, in its own session so that
// signals meant for pglink serve do not reach it, and supervises it: a gateway that dies is
// started again and given the certificates and the last policy. Close detaches and leaves the
// gateway running with the last policy. It is safe for concurrent use.
type gatewayProc struct {
	dataDir string // absolute
	bin     string // the pglink executable
	loops   int    // --event-loops of a gateway it starts; 0 for the default
	certs   remote.Certs
	log     *slog.Logger

	mu        sync.Mutex
	client    *remote.Client    // nil while detached; guarded by mu
	last      *gateway.Snapshot // newest snapshot given to Apply; guarded by mu
	applied   int64             // revision the gateway has in force, as far as known; guarded by mu
	appliedCh chan struct{}     // closed and replaced when applied grows; guarded by mu
	closed    bool              // guarded by mu

	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor ends
}

// startGatewayProc attaches to or starts the gateway process of dataDir and starts supervising
// it. bin "" means this executable; loops is the number of event loops of a gateway it starts
// (0: the default).
func startGatewayProc(ctx context.Context, dataDir, bin string, loops int, certs remote.Certs, log *slog.Logger) (*gatewayProc, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the pglink executable for the gateway process: %w", err)
		}
	}
	if sock := gatewayPath(abs, gatewaySocket); len(sock) > 107 {
		return nil, fmt.Errorf("gateway control socket path %s is longer than a unix socket address allows (107 bytes): use a shorter data dir", sock)
	}
	p := &gatewayProc{dataDir: abs, bin: bin, loops: loops, certs: certs, log: log.With("component", "gateway-supervisor"),
		appliedCh: make(chan struct{}), done: make(chan struct{})}
	c, err := p.attach(ctx)
	if err != nil {
		return nil, err
	}
	p.client = c
	p.setApplied(c.Applied())
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	go p.supervise(sctx)
	return p, nil
}

// attach connects to the running gateway or starts one, and gives it the certificates and the
// last policy.
func (p *gatewayProc) attach(ctx context.Context) (*remote.Client, error) {
	sock := gatewayPath(p.dataDir, gatewaySocket)
	c, err := dialGateway(ctx, sock)
	if err != nil && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
		exited, serr := p.spawn()
		if serr != nil {
			return nil, serr
		}
		c, err = p.waitUp(ctx, sock, exited)
	}
	if err != nil {
		return nil, fmt.Errorf("attach to the gateway process: %w", err)
	}
	if err := c.SetCerts(ctx, p.certs); err != nil {
		c.Close()
		return nil, fmt.Errorf("give the gateway process its certificates: %w", err)
	}
	p.mu.Lock()
	last := p.last
	p.mu.Unlock()
	applied := c.Applied()
	if last != nil {
		var err error
		applied, err = c.Apply(ctx, *last)
		var ae *remote.ApplyError
		if err != nil && !errors.As(err, &ae) {
			c.Close()
			return nil, fmt.Errorf("give the gateway process the policy: %w", err)
		}
		p.setApplied(applied)
	}
	p.log.Info("attached to the gateway process", "pid", c.PID(), "had", c.Applied(), "applied", applied)
	return c, nil
}

// spawn starts `pglink gateway` in its own session, its output appended to
// DATA/gateway/gateway.log. The returned channel is closed when it exits; a goroutine reaps it
// then (it may outlive this process, and with it the goroutine ends).
func (p *gatewayProc) spawn() (<-chan struct{}, error) {
	dir := filepath.Join(p.dataDir, gatewaySubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create gateway dir: %w", err)
	}
	logPath := gatewayPath(p.dataDir, gatewayLogFile)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open gateway log: %w", err)
	}
	defer lf.Close() // the child has its own descriptor
	cmd := exec.Command(p.bin, "gateway", "--data-dir", p.dataDir, "--event-loops", strconv.Itoa(p.loops))
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the gateway process: %w", err)
	}
	p.log.Info("started the gateway process", "pid", cmd.Process.Pid, "log", logPath)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.log.Warn("gateway process exited", "pid", cmd.Process.Pid, "err", err)
		close(exited)
	}()
	return exited, nil
}

// waitUp dials sock until the new gateway answers, it exits, or gatewayStartWait passes.
func (p *gatewayProc) waitUp(ctx context.Context, sock string, exited <-chan struct{}) (*remote.Client, error) {
	deadline := time.Now().Add(gatewayStartWait)
	for {
		c, err := remote.Dial(ctx, sock)
		if err == nil {
			return c, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("the gateway process exited at start; see %s", gatewayPath(p.dataDir, gatewayLogFile))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the gateway process did not answer within %v: %w", gatewayStartWait, err)
		}
	}
}

// supervise checks the gateway until ctx is done, and attaches again (starting a new gateway
// if need be) when the connection breaks.
func (p *gatewayProc) supervise(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(gatewayPing)
	defer tick.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c != nil {
			pctx, cancel := context.WithTimeout(ctx, gatewayCallWait)
			_, err := c.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			p.log.Error("lost the gateway process; attaching again", "pid", c.PID(), "err", err)
			c.Close()
			p.mu.Lock()
			p.client = nil
			p.mu.Unlock()
		}
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		c, err := p.attach(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			p.log.Error("attach to the gateway process", "err", err, "retry_in", backoff)
			continue
		}
		backoff = 0
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.client = c
		p.mu.Unlock()
	}
}

func (p *gatewayProc) setApplied(rev int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rev > p.applied {
		p.applied = rev
		close(p.appliedCh)
		p.appliedCh = make(chan struct{})
	}
}

// Apply gives s to the gateway process. While it is detached, s is kept and given to it when
// it is back, and Apply fails.
func (p *gatewayProc) Apply(s gateway.Snapshot) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return gateway.ErrClosed
	}
	if p.last == nil || s.Revision >= p.last.Revision {
		if w := s.After(p.last); !w.Unchanged {
			p.last = &w
		}
	}
	c := p.client
	p.mu.Unlock()
	if c == nil {
		return fmt.Errorf("apply revision %d: the gateway process is not attached; it gets the policy when it is", s.Revision)
	}
	ctx, cancel := context.WithTimeout(context.Background(), gatewayCallWait)
	defer cancel()
	applied, err := c.Apply(ctx, s)
	var ae *remote.ApplyError
	if err != nil && !errors.As(err, &ae) {
		return fmt.Errorf("apply revision %d in the gateway process: %w", s.Revision, err)
	}
	p.setApplied(applied)
	if err != nil {
		return fmt.Errorf("apply revision %d: %w", s.Revision, err)
	}
	return nil
}

// WaitApplied blocks until the gateway process has a revision >= rev in force, ctx is done or
// Close is called (gateway.ErrClosed).
func (p *gatewayProc) WaitApplied(ctx context.Context, rev int64) error {
	for {
		p.mu.Lock()
		applied, ch, closed := p.applied, p.appliedCh, p.closed
		p.mu.Unlock()
		if applied >= rev {
			return nil
		}
		if closed {
			return gateway.ErrClosed
		}
		select {
		case <-ch:
		case <-p.done:
			return gateway.ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("wait for data-plane revision %d (applied %d): %w", rev, applied, ctx.Err())
		}
	}
}

// Stats returns the gateway process's counters; while it does not answer, only the revision.
func (p *gatewayProc) Stats() gateway.Stats {
	p.mu.Lock()
	c, applied := p.client, p.applied
	p.mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), gatewayCallWait)
		defer cancel()
		st, err := c.Stats(ctx)
		if err == nil {
			return st
		}
		p.log.Warn("gateway stats", "err", err)
	}
	return gateway.Stats{Revision: applied, Refused: map[gateway.Reason]uint64{}}
}

// ServerSessions asks the gateway process for the server's open sessions.
func (p *gatewayProc) ServerSessions(ctx context.Context, server string) ([]gateway.SessionInfo, error) {
	p.mu.Lock()
	c := p.client
	p.mu.Unlock()
	if c == nil {
		return nil, errors.New("the gateway process is not attached")
	}
	ctx, cancel := context.WithTimeout(ctx, gatewayCallWait)
	defer cancel()
	return c.ServerSessions(ctx, server)
}

// Close stops supervising and detaches; the gateway process keeps serving. It is idempotent.
func (p *gatewayProc) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	c := p.client
	p.client = nil
	p.mu.Unlock()
	p.cancel()
	<-p.done
	if c != nil {
		c.Close()
	}
	return nil
}

// busyWait is how long dialGateway waits for a client that has just gone (a pglink serve that
// stopped a moment ago) to be let go.
const busyWait = 5 * time.Second

// dialGateway dials the control socket, retrying while the gateway still counts a previous
// client as attached.
func dialGateway(ctx context.Context, sock string) (*remote.Client, error) {
	deadline := time.Now().Add(busyWait)
	for {
		c, err := remote.Dial(ctx, sock)
		if !errors.Is(err, remote.ErrBusy) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
