package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Snapshot is everything the nameserver answers, compiled from one consistent read of the
// store.
type Snapshot struct {
	// Revision is the store revision the snapshot reflects (at least).
	Revision int64
	// Public is the public view: servers' names and their public endpoints. nil answers
	// REFUSED to every question.
	Public *Zone
	// Resolvers are the virtual networks' resolvers.
	Resolvers []Resolver
}

// Resolver is one virtual network's resolver: where it listens and the private zones linked to
// the network.
type Resolver struct {
	Addr    netip.AddrPort
	Network string // the virtual network's ARM ID, for logs
	Private []*Zone
}

// Config configures a Server.
type Config struct {
	// Listen is the public view's address (UDP and TCP); "" serves no public listener. Port 0
	// picks a port free for both.
	Listen string
	Logger *slog.Logger
	// MaxTCPConns bounds the concurrent TCP connections of each listener (default 256).
	MaxTCPConns int
	// Timeout bounds reading a query and writing an answer on one connection (default 2s).
	Timeout time.Duration
}

// Server is the nameserver: the public listener and one listener pair per resolver. Safe for
// concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	public *endpoint // nil without a public listener

	applyMu   sync.Mutex                   // serializes Apply and Close
	resolvers map[netip.AddrPort]*endpoint // guarded by applyMu
	bindErr   map[netip.AddrPort]string    // last bind failure per address; guarded by applyMu

	mu        sync.Mutex
	applied   int64         // guarded by mu
	appliedCh chan struct{} // closed and replaced when applied grows; guarded by mu
	closed    bool          // guarded by mu
	done      chan struct{} // closed by Close
}

// endpoint is one address served over UDP and TCP with a view that Apply swaps.
type endpoint struct {
	addr    netip.AddrPort
	udp     *net.UDPConn
	udpDone sync.WaitGroup // the UDP readers
	tcp     *mdns.Server
	view    atomic.Pointer[View]
	log     *slog.Logger
}

// New binds the public listener (if cfg.Listen is set) and returns the server, which answers
// REFUSED until the first Apply.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "dns"), resolvers: map[netip.AddrPort]*endpoint{},
		bindErr: map[netip.AddrPort]string{}, appliedCh: make(chan struct{}), done: make(chan struct{})}
	if cfg.Listen != "" {
		ap, err := netip.ParseAddrPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("dns listen address %q: want host:port with an IP address", cfg.Listen)
		}
		e, err := s.serve(ap)
		if err != nil {
			return nil, fmt.Errorf("dns listen: %w", err)
		}
		s.public = e
	}
	return s, nil
}

// Addr returns the public listener's address ("host:port"), "" if there is none.
func (s *Server) Addr() string {
	if s.public == nil {
		return ""
	}
	return s.public.addr.String()
}

// Apply makes snap what the server answers: the public view, and a listener for each resolver
// (new ones are bound, gone ones closed). A resolver whose address cannot be bound is logged
// and reported in the error; the rest of the snapshot is applied all the same, and the
// snapshot's revision counts as applied. A snapshot older than the applied one is ignored.
func (s *Server) Apply(snap Snapshot) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	if snap.Revision < s.Applied() {
		return nil
	}
	if s.public != nil {
		s.public.view.Store(NewView(snap.Public))
	}
	var errs []error
	want := map[netip.AddrPort]bool{}
	for _, r := range snap.Resolvers {
		want[r.Addr] = true
		v := NewView(snap.Public, r.Private...)
		e := s.resolvers[r.Addr]
		if e == nil {
			var err error
			e, err = s.serveView(r.Addr, v)
			if err != nil {
				if s.bindErr[r.Addr] != err.Error() {
					s.log.Error("bind resolver", "addr", r.Addr, "network", r.Network, "err", err)
				}
				s.bindErr[r.Addr] = err.Error()
				errs = append(errs, fmt.Errorf("resolver of %s on %s: %w", r.Network, r.Addr, err))
				continue
			}
			delete(s.bindErr, r.Addr)
			s.resolvers[r.Addr] = e
		}
		e.view.Store(v)
	}
	for addr, e := range s.resolvers {
		if !want[addr] {
			e.close()
			delete(s.resolvers, addr)
		}
	}
	for addr := range s.bindErr {
		if !want[addr] {
			delete(s.bindErr, addr)
		}
	}
	s.mu.Lock()
	if snap.Revision > s.applied {
		s.applied = snap.Revision
		close(s.appliedCh)
		s.appliedCh = make(chan struct{})
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Resolvers returns the number of resolver listeners (each a UDP and a TCP socket).
func (s *Server) Resolvers() int {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return len(s.resolvers)
}

// ErrClosed is returned by Apply and WaitApplied once the server is closed.
var ErrClosed = errors.New("dns server closed")

// Applied returns the latest revision applied.
func (s *Server) Applied() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// WaitApplied blocks until a snapshot of revision rev or later is applied, ctx is done
// (ctx's error, wrapped) or the server is closed (ErrClosed). It implements the API's barrier:
// a change is answered by the resolvers before the operation that made it reports Succeeded.
func (s *Server) WaitApplied(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		applied, ch, closed := s.applied, s.appliedCh, s.closed
		s.mu.Unlock()
		if applied >= rev {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for dns revision %d (applied %d): %w", rev, applied, ctx.Err())
		}
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every listener and waits for them. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for addr, e := range s.resolvers {
		e.close()
		delete(s.resolvers, addr)
	}
	if s.public != nil {
		s.public.close()
	}
	return nil
}

// serve binds ap over UDP and TCP (the same port for both; port 0 picks one) with an empty view.
func (s *Server) serve(ap netip.AddrPort) (*endpoint, error) {
	return s.serveView(ap, NewView(nil))
}

func (s *Server) serveView(ap netip.AddrPort, v *View) (*endpoint, error) {
	pc, ln, err := bindBoth(ap)
	if err != nil {
		return nil, err
	}
	bound := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	e := &endpoint{addr: netip.AddrPortFrom(ap.Addr(), bound.Port()), log: s.log}
	e.view.Store(v)
	e.udp = pc
	e.tcp = &mdns.Server{Listener: netutil.LimitListener(ln, s.cfg.MaxTCPConns), Handler: e,
		ReadTimeout: s.cfg.Timeout, WriteTimeout: s.cfg.Timeout, IdleTimeout: func() time.Duration { return s.cfg.Timeout },
		MaxTCPQueries: 128}
	started := make(chan struct{})
	e.tcp.NotifyStartedFunc = func() { close(started) }
	failed := make(chan error, 1)
	go func() { failed <- e.tcp.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-failed:
		pc.Close()
		ln.Close()
		return nil, err
	}
	// UDP: a fixed set of readers on the socket, one per CPU; each answers in place.
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		e.udpDone.Add(1)
		go func() {
			defer e.udpDone.Done()
			e.serveUDP()
		}()
	}
	return e, nil
}

// serveUDP reads queries from the endpoint's UDP socket and answers each, until the socket is
// closed. A packet miekg/dns cannot parse, and any response, is dropped. Each reader keeps its
// own memo of packed answers for the current view, so that a repeated question costs a parse
// and a map lookup, without locks or allocations beyond the parse.
func (e *endpoint) serveUDP() {
	buf := make([]byte, mdns.MaxMsgSize)
	var out, key []byte
	var memo map[string][]byte
	var memoView *View
	for {
		n, from, err := e.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error (ICMP feedback, say): keep serving
		}
		var req mdns.Msg
		if req.Unpack(buf[:n]) != nil || req.Response {
			continue
		}
		v := e.view.Load()
		if v != memoView {
			memo, memoView = map[string][]byte{}, v
		}
		var ok bool
		key, ok = appendMemoKey(key[:0], &req, true)
		if b, hit := memo[string(key)]; ok && hit {
			out = append(out[:0], b...)
			binary.BigEndian.PutUint16(out, req.Id)
		} else {
			var failed bool
			out, failed = e.reply(v, out[:0], &req)
			if out == nil {
				continue
			}
			if ok && !failed && len(memo) < maxMemo {
				kept := append([]byte(nil), out...)
				binary.BigEndian.PutUint16(kept, 0)
				memo[string(key)] = kept
			}
		}
		e.udp.WriteToUDPAddrPort(out, from)
	}
}

// reply appends v's packed UDP reply to req to dst. Should building it panic, it logs that and
// answers SERVFAIL (failed true): one query never stops a reader, and so the listener.
func (e *endpoint) reply(v *View, dst []byte, req *mdns.Msg) (out []byte, failed bool) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("dns handler panic", "addr", e.addr, "panic", fmt.Sprint(p))
			m := new(mdns.Msg)
			m.SetRcode(req, mdns.RcodeServerFailure)
			out, _ = m.PackBuffer(dst[:0])
			failed = true
		}
	}()
	return v.packedReply(dst, req, true, e.log), false
}

// answer appends the packed reply to req to dst.
func (e *endpoint) answer(dst []byte, req *mdns.Msg, udp bool) []byte {
	return e.view.Load().packedReply(dst, req, udp, e.log)
}

// bindBoth binds UDP and TCP on the same address; with port 0 it retries until both get the
// same free port.
func bindBoth(ap netip.AddrPort) (*net.UDPConn, net.Listener, error) {
	for try := 0; ; try++ {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if ap.Port() != 0 || try >= 20 {
			return nil, nil, err
		}
	}
}

func (e *endpoint) close() {
	if err := e.tcp.Shutdown(); err != nil {
		e.log.Debug("stop dns listener", "addr", e.addr, "err", err)
	}
	e.udp.Close()
	e.udpDone.Wait()
}

// ServeDNS answers one query from the endpoint's current view.
func (e *endpoint) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("dns handler panic", "addr", e.addr, "panic", fmt.Sprint(p))
			m := new(mdns.Msg)
			m.SetRcode(req, mdns.RcodeServerFailure)
			w.WriteMsg(m)
		}
	}()
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if b := e.answer(nil, req, udp); b != nil {
		if _, err := w.Write(b); err != nil {
			e.log.Debug("write dns answer", "addr", e.addr, "err", err)
		}
	}
}
