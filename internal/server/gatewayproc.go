package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/gateway/remote"
)

// The gateway process keeps its files in DATA/gateway (mode 0700): the control socket
// (0600), its pid file, the lock that makes it the only gateway of the data dir, and the log
// that `pglink serve` points its output to when it starts it.
const (
	gatewaySubdir  = "gateway"
	gatewaySocket  = "control.sock"
	gatewayPIDFile = "gateway.pid"
	gatewayLock    = "gateway.lock"
	gatewayLogFile = "gateway.log"
	gatewayHandoff = "handoff.sock"

	orphanCheck = 5 * time.Second // how often the gateway checks that its pid file is there
)

func gatewayPath(dataDir, name string) string { return filepath.Join(dataDir, gatewaySubdir, name) }

// GatewayConfig configures a gateway process (`pglink gateway`).
type GatewayConfig struct {
	DataDir string // the data dir of the pglink serve that drives it
	Logger  *slog.Logger
	// Replace takes over from the gateway that runs for DataDir (an upgrade): its listeners,
	// its control socket and its plain sessions move to this process with no connection
	// refused; it drains its TLS sessions for DrainGrace.
	Replace bool
	// DrainGrace is how long a replaced gateway lets the sessions it could not hand over (TLS)
	// run before it ends them with SQLSTATE 57P01 and exits; zero means DefaultDrainGrace. The
	// successor's DrainGrace, sent in the handoff, overrides the predecessor's.
	DrainGrace time.Duration
	// EventLoops is how many event loops relay sessions; zero means the default (see
	// gateway.Config.Reactors).
	EventLoops int
}

// DefaultDrainGrace is how long a replaced gateway drains its TLS sessions by default.
const DefaultDrainGrace = 5 * time.Minute

// replacedMessage is what sessions of a replaced gateway get once its grace period is over.
const replacedMessage = "pglink gateway is being replaced; reconnect"

// RunGateway runs the data plane alone until ctx is done or the attached pglink serve asks it
// to stop: it serves the endpoints of the last policy it was given, and answers the control
// socket DATA/gateway/control.sock (see package remote), where pglink serve attaches, gives it
// certificates and policies and reads its counters. pglink serve may come and go: sessions and
// listeners stay. When RunGateway ends, every session gets a FATAL ErrorResponse with SQLSTATE
// 57P01 and a reason, and then the gateway exits; also when its pid file
// (DATA/gateway/gateway.pid) is removed. Only one gateway runs per data dir: a second one fails
// at once. A successor (Replace) takes over through DATA/gateway/handoff.sock; then this
// gateway drains for cfg.DrainGrace and returns nil.
func RunGateway(ctx context.Context, cfg GatewayConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DrainGrace <= 0 {
		cfg.DrainGrace = DefaultDrainGrace
	}
	log := cfg.Logger
	dir := filepath.Join(cfg.DataDir, gatewaySubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create gateway dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("gateway dir: %w", err)
	}
	r := &gatewayRun{cfg: cfg, log: log, certs: &gatewayCerts{}}
	gwTLS := serverTLS()
	gwTLS.GetCertificate = r.certs.GetCertificate
	r.g = gateway.New(gateway.Config{TLS: gwTLS, Logger: log, Reactors: cfg.EventLoops})
	var err error
	if cfg.Replace {
		err = r.takeOver(ctx)
	} else {
		err = r.fresh()
	}
	if err != nil {
		r.g.Close()
		if r.lock != nil {
			r.lock.Close()
		}
		return err
	}
	return r.run(ctx)
}

// gatewayRun is one gateway process's state.
type gatewayRun struct {
	cfg   GatewayConfig
	log   *slog.Logger
	g     *gateway.Gateway
	certs *gatewayCerts
	lock  *os.File            // holds gateway.lock
	ctl   *os.File            // the control socket's listener; each control server uses a copy
	pred  *remote.HandoffConn // the predecessor while it drains; nil otherwise

	mu       sync.Mutex        // guards the fields below
	snap     *gateway.Snapshot // last snapshot applied
	pem      *remote.Certs     // last certificates installed
	forwards *remote.HandoffConn
}

// fresh takes the lock and binds the control socket.
func (r *gatewayRun) fresh() error {
	lock, err := lockGateway(r.cfg.DataDir)
	if err != nil {
		return err
	}
	r.lock = lock
	if err := r.writePID(); err != nil {
		return err
	}
	sock := gatewayPath(r.cfg.DataDir, gatewaySocket)
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	if err := os.Chmod(sock, 0o600); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if r.ctl, err = ln.File(); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	return nil
}

func (r *gatewayRun) writePID() error {
	if err := os.WriteFile(gatewayPath(r.cfg.DataDir, gatewayPIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("write gateway pid file: %w", err)
	}
	return nil
}

// Apply, Applied, Stats and ServerSessions make the control server's Gate, remembering the last snapshot for a
// successor and forwarding it to a draining predecessor.
func (r *gatewayRun) Apply(s gateway.Snapshot) error {
	err := r.g.Apply(s)
	r.mu.Lock()
	if r.snap == nil || s.Revision >= r.snap.Revision {
		if w := s.After(r.snap); !w.Unchanged {
			r.snap = &w
		}
	}
	fw := r.forwards
	if fw != nil {
		if ferr := fw.Send(s, nil); ferr != nil {
			r.forwards = nil
		}
	}
	r.mu.Unlock()
	return err
}

func (r *gatewayRun) Applied() int64       { return r.g.Applied() }
func (r *gatewayRun) Stats() gateway.Stats { return r.g.Stats() }
func (r *gatewayRun) ServerSessions(ctx context.Context, server string) ([]gateway.SessionInfo, error) {
	return r.g.ServerSessions(ctx, server)
}

func (r *gatewayRun) setCerts(c remote.Certs) error {
	if err := r.certs.set(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.pem = &c
	r.mu.Unlock()
	return nil
}

// run serves until the gateway stops or hands over.
func (r *gatewayRun) run(ctx context.Context) error {
	log, g := r.log, r.g
	pidFile := gatewayPath(r.cfg.DataDir, gatewayPIDFile)
	stopped := make(chan string, 1)
	srv := &remote.Server{Gate: r, SetCerts: r.setCerts, Log: log,
		Stop: func(reason string) {
			select {
			case stopped <- reason:
			default:
			}
		}}
	defer r.ctl.Close()
	scancel, served, err := r.serveControl(ctx, srv)
	if err != nil {
		g.Close()
		return err
	}

	handoffs, hstop, err := r.listenHandoff()
	if err != nil {
		scancel()
		<-served
		g.Close()
		return err
	}
	defer hstop()
	if r.pred != nil {
		defer r.pred.Close()
	}
	log.Info("pglink gateway running", "pid", os.Getpid(), "control", gatewayPath(r.cfg.DataDir, gatewaySocket))

	msg := "pglink gateway is shutting down"
	// Like PostgreSQL's postmaster, the gateway stops when its pid file goes, say with the data
	// dir: nothing could attach to it any more.
	check := time.NewTicker(orphanCheck)
	defer check.Stop()
	stop := false
	for !stop {
		select {
		case <-ctx.Done():
			stop = true
		case reason := <-stopped:
			if reason != "" {
				msg += ": " + reason
			}
			stop = true
		case err := <-served:
			scancel()
			g.Shutdown(msg, "Reconnect in a moment.")
			return fmt.Errorf("control socket: %w", err)
		case <-check.C:
			if _, err := os.Stat(pidFile); errors.Is(err, os.ErrNotExist) {
				log.Error("pid file removed; stopping", "pid_file", pidFile)
				msg += ": its data dir was removed"
				stop = true
			}
		case succ := <-handoffs:
			scancel()
			<-served
			if r.handOver(succ) {
				hstop()
				return r.drain(ctx, succ)
			}
			// The successor failed: carry on, with a control server again.
			if scancel, served, err = r.serveControl(ctx, srv); err != nil {
				g.Shutdown(msg, "Reconnect in a moment.")
				return err
			}
		}
	}
	log.Info("pglink gateway stopping", "reason", msg, "sessions", len(g.Sessions()))
	// Sessions end first, then the control connection: a client waiting in Stop for the
	// connection to close knows that every session has ended.
	g.Shutdown(msg, "Reconnect in a moment.")
	os.Remove(gatewayPath(r.cfg.DataDir, gatewaySocket))
	os.Remove(gatewayPath(r.cfg.DataDir, gatewayHandoff))
	os.Remove(pidFile)
	scancel()
	err = <-served
	r.lock.Close()
	return err
}

// listenHandoff listens on the handoff socket and returns successors as they come.
func (r *gatewayRun) listenHandoff() (<-chan *remote.HandoffConn, func(), error) {
	path := gatewayPath(r.cfg.DataDir, gatewayHandoff)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("remove stale handoff socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen on handoff socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("handoff socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan *remote.HandoffConn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			h, err := remote.AcceptHandoff(ln)
			if err != nil {
				return
			}
			select {
			case ch <- h:
			case <-ctx.Done():
				h.Close()
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			ln.Close()
			<-done
		})
	}
	return ch, stop, nil
}

// handOver gives the successor everything it needs; true once it has taken over. The caller
// has stopped the control server, which detaches pglink serve (it attaches again to the same
// socket, where the successor answers), and resumes it on false.
func (r *gatewayRun) handOver(succ *remote.HandoffConn) bool {
	log := r.log.With("successor", succ.PID)
	var hello remote.HandoffHello
	if _, err := succ.Receive(&hello); err != nil {
		log.Error("handoff: read hello", "err", err)
		succ.Close()
		return false
	}
	if hello.Version != remote.Version {
		succ.Send(remote.HandoffState{Version: remote.Version, PID: os.Getpid(),
			Error: fmt.Sprintf("handoff protocol version %d spoken; this gateway speaks version %d", hello.Version, remote.Version)}, nil)
		succ.Close()
		return false
	}
	if hello.DrainGrace > 0 {
		r.cfg.DrainGrace = hello.DrainGrace
	}
	log.Info("handing over to a successor")
	lns, err := r.g.ListenerFiles()
	if err != nil {
		log.Error("handoff: listeners", "err", err)
		succ.Close()
		return false
	}
	defer func() {
		for _, f := range lns {
			f.Close()
		}
	}()
	r.mu.Lock()
	st := remote.HandoffState{Version: remote.Version, PID: os.Getpid(), Snapshot: r.snap, Certs: r.pem}
	r.mu.Unlock()
	files := []*os.File{r.lock, r.ctl}
	for addr, f := range lns {
		st.Listeners = append(st.Listeners, addr.String())
		files = append(files, f)
	}
	// Plain sessions stop being relayed here; what was read and not yet relayed travels in
	// their state, the rest waits in their sockets.
	hs, socks := r.g.DetachPlain()
	st.Sessions = hs
	for _, p := range socks {
		files = append(files, p[0], p[1])
	}
	keep := func() {
		if err := r.g.Adopt(hs, socks); err != nil {
			log.Error("handoff: take the sessions back", "err", err)
		}
	}
	if err := succ.Send(st, files); err != nil {
		log.Error("handoff: send state", "err", err)
		succ.Close()
		keep()
		return false
	}
	var ack remote.HandoffAck
	if _, err := succ.Receive(&ack); err != nil || !ack.OK {
		log.Error("handoff: the successor did not take over", "err", err, "its_error", ack.Error)
		succ.Close()
		keep()
		return false
	}
	for _, p := range socks {
		p[0].Close()
		p[1].Close()
	}
	// The successor accepts on the listeners now; this gateway stops accepting and drains.
	r.g.StopAccepting()
	log.Info("handed over to a successor; draining", "sessions_handed_over", len(hs), "sessions_kept", len(r.g.Sessions()), "grace", r.cfg.DrainGrace)
	return true
}

// serveControl runs a control server on a copy of the control socket's listener until the
// returned cancel; served reports its end.
func (r *gatewayRun) serveControl(ctx context.Context, srv *remote.Server) (context.CancelFunc, chan error, error) {
	nl, err := net.FileListener(r.ctl)
	if err != nil {
		return nil, nil, fmt.Errorf("control listener: %w", err)
	}
	ln, ok := nl.(*net.UnixListener)
	if !ok {
		nl.Close()
		return nil, nil, fmt.Errorf("control listener is %T, not unix", nl)
	}
	ln.SetUnlinkOnClose(false) // the path outlives this copy; a plain stop removes it
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	return cancel, served, nil
}

// drain applies the policies the successor forwards (revocations still apply) until the
// sessions left here end or the grace period passes, then ends them with 57P01 and returns.
func (r *gatewayRun) drain(ctx context.Context, succ *remote.HandoffConn) error {
	log, g := r.log, r.g
	defer succ.Close()
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			var s gateway.Snapshot
			if _, err := succ.Receive(&s); err != nil {
				return
			}
			if err := g.Apply(s); err != nil {
				log.Debug("apply forwarded policy while draining", "err", err)
			}
		}
	}()
	grace := time.NewTimer(r.cfg.DrainGrace)
	defer grace.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for len(g.Sessions()) > 0 || g.Stats().SessionsOpen > 0 {
		select {
		case <-ctx.Done():
		case <-grace.C:
		case <-tick.C:
			continue
		}
		break
	}
	log.Info("drained", "sessions_left", len(g.Sessions()))
	g.Shutdown(replacedMessage, "Connect again: the new gateway serves the same address.")
	succ.Close()
	<-forwarded
	r.lock.Close()
	return nil
}

// takeOver receives a running gateway's listeners, control socket, lock and sessions.
func (r *gatewayRun) takeOver(ctx context.Context) error {
	path := gatewayPath(r.cfg.DataDir, gatewayHandoff)
	pred, err := remote.DialHandoff(ctx, path)
	if err != nil {
		return fmt.Errorf("replace the running gateway: %w", err)
	}
	stop := pred.CloseOnDone(ctx)
	defer stop()
	if err := pred.Send(remote.HandoffHello{Version: remote.Version, PID: os.Getpid(), DrainGrace: r.cfg.DrainGrace}, nil); err != nil {
		pred.Close()
		return err
	}
	var st remote.HandoffState
	files, err := pred.Receive(&st)
	if err != nil {
		pred.Close()
		return fmt.Errorf("receive the running gateway's state: %w", err)
	}
	fail := func(err error) error {
		for _, f := range files {
			f.Close()
		}
		pred.Send(remote.HandoffAck{Error: err.Error()}, nil)
		pred.Close()
		return err
	}
	if st.Error != "" {
		return fail(fmt.Errorf("the running gateway refused the handoff: %s", st.Error))
	}
	if len(files) != 2+len(st.Listeners)+2*len(st.Sessions) {
		return fail(fmt.Errorf("handoff: %d descriptors for %d listeners and %d sessions", len(files), len(st.Listeners), len(st.Sessions)))
	}
	r.lock, r.ctl = files[0], files[1]
	files = files[2:]
	inherit := map[netip.AddrPort]*os.File{}
	for i, a := range st.Listeners {
		addr, err := netip.ParseAddrPort(a)
		if err != nil {
			return fail(fmt.Errorf("handoff: listener address %q: %w", a, err))
		}
		inherit[addr] = files[i]
	}
	var socks [][2]*os.File
	for i := len(st.Listeners); i+1 < len(files); i += 2 {
		socks = append(socks, [2]*os.File{files[i], files[i+1]})
	}
	files = nil
	if err := r.g.Inherit(inherit); err != nil {
		r.log.Error("handoff: inherit listeners", "err", err)
	}
	if st.Certs != nil {
		if err := r.setCerts(*st.Certs); err != nil {
			return fail(fmt.Errorf("handoff: certificates: %w", err))
		}
	}
	if st.Snapshot != nil {
		if err := r.Apply(*st.Snapshot); err != nil {
			r.log.Error("handoff: apply policy", "err", err)
		}
	}
	// Sessions last: the policy they are decided under is in force.
	if err := r.g.Adopt(st.Sessions, socks); err != nil {
		r.log.Error("handoff: adopt sessions", "err", err)
	}
	if err := r.writePID(); err != nil {
		return fail(err)
	}
	if err := pred.Send(remote.HandoffAck{OK: true}, nil); err != nil {
		return fmt.Errorf("handoff: acknowledge: %w", err)
	}
	r.log.Info("took over from the running gateway", "predecessor", st.PID, "listeners", len(st.Listeners), "sessions", len(st.Sessions))
	// Forward every later policy to the predecessor while it drains.
	r.mu.Lock()
	r.forwards = pred
	r.mu.Unlock()
	r.pred = pred
	return nil
}

// lockGateway takes DATA/gateway/gateway.lock, which the gateway holds as long as it runs.
func lockGateway(dataDir string) (*os.File, error) {
	f, err := os.OpenFile(gatewayPath(dataDir, gatewayLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open gateway lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("a pglink gateway (pid %s) already runs for data dir %s", gatewayPID(dataDir), dataDir)
		}
		return nil, fmt.Errorf("lock gateway: %w", err)
	}
	return f, nil
}

// gatewayPID returns the pid in the gateway's pid file, or "?".
func gatewayPID(dataDir string) string {
	b, err := os.ReadFile(gatewayPath(dataDir, gatewayPIDFile))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// StopGateway asks the gateway of dataDir to end every session with SQLSTATE 57P01 and
// reason, and to exit, and waits until it has. It fails while a pglink serve is attached
// (stop it first, or it restarts the gateway) and when no gateway runs.
func StopGateway(ctx context.Context, dataDir, reason string) error {
	c, err := dialGateway(ctx, gatewayPath(dataDir, gatewaySocket))
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no pglink gateway runs for data dir %s", dataDir)
		}
		return fmt.Errorf("%w (stop pglink serve first: it restarts the gateway)", err)
	}
	defer c.Close()
	if err := c.Stop(ctx, reason); err != nil {
		return err
	}
	// The connection closes as the gateway exits; its lock is released just after.
	for {
		f, err := lockGateway(dataDir)
		if err == nil {
			f.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for gateway %d to exit: %w", c.PID(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// gatewayCerts serves the certificates pushed by pglink serve: per endpoint address from the
// local CA, else the fallback.
type gatewayCerts struct {
	cur atomic.Pointer[endpointCerts]
}

// set installs new material.
func (g *gatewayCerts) set(c remote.Certs) error {
	fallback, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	e := &endpointCerts{fallback: fallback, byIP: map[string]*tls.Certificate{}}
	if c.CACert != "" {
		if e.ca, err = tls.X509KeyPair([]byte(c.CACert), []byte(c.CAKey)); err != nil {
			return fmt.Errorf("CA: %w", err)
		}
	}
	g.cur.Store(e)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (g *gatewayCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	e := g.cur.Load()
	if e == nil {
		return nil, errors.New("no certificate yet: pglink serve has not attached")
	}
	return e.GetCertificate(hello)
}

// pemCerts encodes the CA (may be zero) and the fallback certificate for the gateway process.
func pemCerts(ca, fallback tls.Certificate) (remote.Certs, error) {
	var c remote.Certs
	var err error
	if c.Cert, c.Key, err = pemPair(fallback); err != nil {
		return c, fmt.Errorf("encode certificate: %w", err)
	}
	if len(ca.Certificate) > 0 && ca.PrivateKey != nil {
		if c.CACert, c.CAKey, err = pemPair(ca); err != nil {
			return c, fmt.Errorf("encode CA: %w", err)
		}
	}
	return c, nil
}

func pemPair(c tls.Certificate) (cert, key string, err error) {
	var b strings.Builder
	for _, der := range c.Certificate {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	k, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return "", "", err
	}
	return b.String(), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})), nil
}
