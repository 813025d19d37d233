// Package gateway is pglink's data plane: one TCP listener per endpoint (a server's public
// endpoint or a private endpoint), a PostgreSQL protocol gate that admits or refuses each
// client by the endpoint it arrived on and its source address, and a relay that splices
// admitted sessions to the server's PostgreSQL unix socket. When a new policy revokes access,
// the sessions it no longer admits get a FATAL ErrorResponse and are closed.
//
// The policy is an immutable Snapshot computed by the control plane; the gateway never reads
// the store. The accept path reads the current snapshot without locks.
package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the kind of an endpoint.
type Kind int

// The endpoint kinds.
const (
	Public  Kind = iota // a server's public endpoint: firewall rules admit clients by address
	Private             // a private endpoint: its connection's state admits every client or none
)

// String returns "public" or "private".
func (k Kind) String() string {
	if k == Private {
		return "private"
	}
	return "public"
}

// AddrRange is an inclusive IPv4 range [Start, End] (a firewall rule).
type AddrRange struct{ Start, End netip.Addr }

// Contains reports whether a lies in the range.
func (r AddrRange) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return r.Start.BitLen() == a.BitLen() && r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0
}

// Reason classifies why a client was refused or a session revoked, for metrics.
type Reason string

// The reasons. The zero Reason on an Endpoint means "infer it from Refuse".
const (
	ReasonPending        Reason = "pending"         // the private endpoint connection awaits approval
	ReasonRejected       Reason = "rejected"        // the private endpoint connection was rejected
	ReasonRemoved        Reason = "removed"         // the connection or the endpoint was removed
	ReasonPublicDisabled Reason = "public_disabled" // public network access is Disabled
	ReasonFirewall       Reason = "firewall"        // no firewall rule admits the client address
	ReasonStopped        Reason = "stopped"         // the server is not running
	// ReasonInsecureTransport: the server requires TLS (require_secure_transport) and the
	// client did not negotiate it, or negotiated a version below ssl_min_protocol_version.
	ReasonInsecureTransport Reason = "insecure_transport"
	ReasonOther             Reason = "other" // anything else
)

// reasons lists every Reason that Stats counts, in a stable order; ReasonOther is last.
var reasons = [...]Reason{ReasonPending, ReasonRejected, ReasonRemoved, ReasonPublicDisabled, ReasonFirewall, ReasonStopped, ReasonInsecureTransport, ReasonOther}

// Endpoint is one listening address and the rule that admits clients on it.
type Endpoint struct {
	Addr       netip.AddrPort // e.g. 127.77.0.5:5432; each endpoint has its own address (port 0 is invalid)
	Kind       Kind
	ID         string // ARM ID of the private endpoint, or of the server for its public endpoint (logs)
	Server     string // ARM ID of the flexible server (logs, metrics)
	ServerName string
	// Upstream is the directory of the server's PostgreSQL unix socket (".s.PGSQL.5432"
	// inside); "" when the server is not running.
	Upstream string
	// Refuse, when non-empty, refuses every client with this message (connection
	// Pending/Rejected/removed, public access Disabled, server Stopped…).
	Refuse string
	Hint   string // optional hint for Refuse
	// Reason classifies Refuse for metrics; "" infers it from Refuse's wording (Pending,
	// Rejected, removed or Disconnected, public network access, Stopped or not running).
	Reason Reason
	// Allow lists, for a Public endpoint only, the ranges that admit a client address; a client
	// outside all of them is refused with "no firewall rule of server %q admits client address
	// %s" and a hint to add one.
	Allow []AddrRange
	// RequireTLS refuses a client that did not negotiate TLS (SSLRequest) with SQLSTATE 28000
	// before any byte reaches PostgreSQL, and revokes such open sessions when a new policy sets
	// it: the server's require_secure_transport. Cancel requests are exempt, as in PostgreSQL
	// (libpq sends them in plaintext). Without Config.TLS no client can meet it.
	RequireTLS bool
	// MinTLSVersion is the lowest TLS version (tls.VersionTLS12, …) a handshake on this
	// endpoint accepts, and the lowest an open TLS session may keep using: the server's
	// ssl_min_protocol_version. Zero means Config.TLS's MinVersion.
	MinTLSVersion uint16
}

// Snapshot is the whole data-plane policy at one store revision.
type Snapshot struct {
	Revision  int64
	Endpoints []Endpoint
	// Unchanged says the policy at Revision is the one in force: Apply only advances the
	// revision and Endpoints is ignored. It lets the control plane acknowledge revisions that
	// changed nothing of the policy without sending it whole.
	Unchanged bool `json:",omitempty"`
}

// After returns s as a whole snapshot: if s is Unchanged, prev's endpoints at s's revision.
// prev must be the last whole snapshot applied before s (nil if none: s is returned as is).
func (s Snapshot) After(prev *Snapshot) Snapshot {
	if !s.Unchanged || prev == nil {
		return s
	}
	return Snapshot{Revision: s.Revision, Endpoints: prev.Endpoints}
}

// Config configures a Gateway. Every field is optional.
type Config struct {
	// TLS is the server side TLS configuration used after an SSLRequest (certificate from
	// pglink's CA); nil answers 'N' to SSLRequest. An endpoint's MinTLSVersion raises its
	// MinVersion for that endpoint. It must not be modified after New.
	TLS *tls.Config
	// DialTimeout bounds dialing the upstream unix socket; zero means 5s.
	DialTimeout time.Duration
	// StartupTimeout bounds the time from accept to a decision (TLS handshake and startup
	// message included); zero means 30s.
	StartupTimeout time.Duration
	// Logger receives one line per session; nil discards.
	Logger *slog.Logger
	// Now is the clock for session start times and decision latency; nil means time.Now.
	Now func() time.Time
	// Reactors is the number of event loops that relay sessions, each on its own epoll set
	// and each keeping a P of the Go runtime while busy. Zero means one per CPU the runtime
	// uses (GOMAXPROCS) but one, and at least one: a P stays free for the goroutines that
	// accept, negotiate TLS and serve the control plane. On 2 CPUs that is one loop: a second
	// one measured 3–6 % more TPS at 8 and 64 clients and the same at one, but 5 % less
	// connection churn in plaintext and 10 % less over TLS, as with both Ps held busy the
	// goroutines that accept and authenticate wait for a loop to yield. A session stays on one
	// loop, chosen by its connection id (round robin).
	Reactors int
}

// ErrClosed is returned by Apply and WaitApplied after Close.
var ErrClosed = errors.New("gateway closed")

// ErrNoPolicy is returned by Apply of an Unchanged snapshot before any whole one: send it whole.
var ErrNoPolicy = errors.New("no policy in force to keep: send the snapshot whole")

// Gateway serves the endpoints of the last applied Snapshot. It is safe for concurrent use.
type Gateway struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	policy atomic.Pointer[policy] // the current policy; read lock-free on the accept path
	whole  bool                   // a whole snapshot was applied (under applyMu)

	applyMu   sync.Mutex                          // serializes Apply and Close
	listeners map[netip.AddrPort]*net.TCPListener // guarded by applyMu
	listenErr map[netip.AddrPort]error            // last bind error per address; guarded by applyMu
	handoff   handoffState                        // listeners inherited or given away; guarded by applyMu

	mu        sync.Mutex         // guards the fields below
	conns     map[*conn]struct{} // every accepted connection until its goroutine ends
	applied   int64              // revision of the last applied snapshot
	appliedCh chan struct{}      // closed and replaced when applied grows
	closed    bool               // Close was called
	done      chan struct{}      // closed by Close
	ended     sessionTotals      // byte totals of ended sessions
	nextID    uint64             // connection ids, for logs

	tlsMu    sync.Mutex             // guards tlsByMin
	tlsByMin map[uint16]*tls.Config // cfg.TLS with a higher MinVersion, by that version

	reactors []*reactor     // relay sessions; none where unavailable (goroutines relay)
	wg       sync.WaitGroup // accept loops, connection goroutines and the reactors
	stats    counters       // atomic counters
}

type sessionTotals struct{ in, out uint64 }

// New returns a Gateway with no endpoints. Apply gives it some.
func New(cfg Config) *Gateway {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g := &Gateway{
		cfg:       cfg,
		log:       log.With("component", "gateway"),
		now:       cfg.Now,
		listeners: map[netip.AddrPort]*net.TCPListener{},
		listenErr: map[netip.AddrPort]error{},
		conns:     map[*conn]struct{}{},
		appliedCh: make(chan struct{}),
		done:      make(chan struct{}),
		tlsByMin:  map[uint16]*tls.Config{},
	}
	g.policy.Store(&policy{byAddr: map[netip.AddrPort]*Endpoint{}})
	n := cfg.Reactors
	if n <= 0 {
		n = max(runtime.GOMAXPROCS(0)-1, 1)
	}
	for i := range n {
		r, err := newReactor(g.log, i)
		if err != nil {
			g.log.Warn("no event loop; sessions are relayed by goroutines", "err", err)
			break
		}
		g.reactors = append(g.reactors, r)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			r.run()
		}()
	}
	return g
}

// loop returns the event loop for the session with connection id id; nil if there is none.
func (g *Gateway) loop(id uint64) *reactor {
	if len(g.reactors) == 0 {
		return nil
	}
	return g.reactors[id%uint64(len(g.reactors))]
}

// tlsConfig returns the TLS configuration for a handshake on ep (nil if there is no endpoint):
// Config.TLS, with MinVersion raised to ep.MinTLSVersion.
func (g *Gateway) tlsConfig(ep *Endpoint) *tls.Config {
	if ep == nil || ep.MinTLSVersion <= g.cfg.TLS.MinVersion {
		return g.cfg.TLS
	}
	g.tlsMu.Lock()
	defer g.tlsMu.Unlock()
	c := g.tlsByMin[ep.MinTLSVersion]
	if c == nil {
		c = g.cfg.TLS.Clone()
		c.MinVersion = ep.MinTLSVersion
		g.tlsByMin[ep.MinTLSVersion] = c
	}
	return c
}

// Apply makes s the policy. It binds listeners for new endpoint addresses, swaps the admission
// rules atomically, closes listeners of endpoints no longer present, and revokes the
// established sessions that s no longer admits (the same rule as for a new client from that
// session's address): each gets a FATAL ErrorResponse (SQLSTATE 57P01) if its relay is at a
// message boundary, and is closed. Apply returns once listeners are bound and revoked
// sessions are closed. A snapshot older than the current revision is ignored. Errors do not
// stop the rest of s from being applied, since they must not delay a revocation: a listener
// that cannot be bound is reported, and applying s again retries the bind; an endpoint without
// a valid address is left out and one address claimed by two endpoints refuses every client
// (fail closed), both reported.
func (g *Gateway) Apply(s Snapshot) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	if g.isClosed() {
		return ErrClosed
	}
	if s.Revision < g.Applied() {
		return nil
	}
	if s.Unchanged {
		if !g.whole {
			return fmt.Errorf("apply revision %d: %w", s.Revision, ErrNoPolicy)
		}
		// The endpoints, listeners and admitted sessions stay as they are.
		p := *g.policy.Load()
		p.rev = s.Revision
		g.policy.Store(&p)
		g.advance(s.Revision)
		return nil
	}
	p, errs := newPolicy(s)
	g.whole = true

	// Bind new listeners first: clients queue in the backlog until the accept loops start,
	// after the policy that knows their endpoints is in place.
	var fresh []*listener
	for addr := range p.byAddr {
		if _, ok := g.listeners[addr]; ok {
			continue
		}
		ln, err := g.listen(addr)
		if err != nil {
			if prev := g.listenErr[addr]; prev == nil || prev.Error() != err.Error() {
				g.log.Error("bind endpoint", "addr", addr, "endpoint", p.byAddr[addr].ID, "err", err)
			}
			g.listenErr[addr] = err
			errs = append(errs, fmt.Errorf("listen on %s for %s: %w", addr, p.byAddr[addr].ID, err))
			continue
		}
		delete(g.listenErr, addr)
		g.listeners[addr] = ln
		fresh = append(fresh, &listener{addr: addr, ln: ln})
	}

	g.policy.Store(p)
	g.closeUnusedInherited()

	for _, l := range fresh {
		g.wg.Add(1)
		go g.serve(l)
	}
	for addr, ln := range g.listeners {
		if _, ok := p.byAddr[addr]; !ok {
			ln.Close()
			delete(g.listeners, addr)
		}
	}
	g.stats.listeners.Store(int64(len(g.listeners)))
	for addr := range g.listenErr {
		if _, ok := p.byAddr[addr]; !ok {
			delete(g.listenErr, addr)
		}
	}

	g.revoke(p)

	g.advance(s.Revision)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("apply revision %d: %w", s.Revision, err)
	}
	return nil
}

// advance records rev as applied and wakes WaitApplied.
func (g *Gateway) advance(rev int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rev > g.applied {
		g.applied = rev
		close(g.appliedCh)
		g.appliedCh = make(chan struct{})
	}
}

// revokeWait bounds how long Apply waits for revoked sessions to close before it closes their
// sockets outright.
const revokeWait = time.Second

// revoke closes the admitted sessions that p does not admit and waits until they are closed.
func (g *Gateway) revoke(p *policy) {
	var victims []*conn
	g.mu.Lock()
	for c := range g.conns {
		if !c.admitted {
			continue
		}
		d := p.decideSession(c.listen, c.client.Addr(), c.tlsVersion, c.ep)
		if !d.admit {
			victims = append(victims, c)
			c.revokeWith(d)
		}
	}
	g.mu.Unlock()
	if len(victims) == 0 {
		return
	}
	g.stats.revoked.Add(uint64(len(victims)))
	timer := time.NewTimer(revokeWait)
	defer timer.Stop()
	for _, c := range victims {
		select {
		case <-c.ended:
		case <-timer.C:
			for _, c := range victims {
				c.kill()
			}
			return
		}
	}
}

// Applied returns the revision of the last applied snapshot.
func (g *Gateway) Applied() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.applied
}

// WaitApplied blocks until Applied() >= rev, ctx is done (ctx's error) or the gateway is closed
// (ErrClosed).
func (g *Gateway) WaitApplied(ctx context.Context, rev int64) error {
	for {
		g.mu.Lock()
		applied, ch, closed := g.applied, g.appliedCh, g.closed
		g.mu.Unlock()
		if applied >= rev {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-g.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for data-plane revision %d (applied %d): %w", rev, applied, ctx.Err())
		}
	}
}

// Close is Shutdown with the message "pglink gateway is shutting down".
func (g *Gateway) Close() error {
	return g.Shutdown("pglink gateway is shutting down", "Reconnect in a moment.")
}

// Shutdown stops the listeners and ends every session: an admitted session gets a FATAL
// ErrorResponse (SQLSTATE 57P01 admin_shutdown) "terminating connection: " + msg, with hint, at
// a message boundary, as on a revocation, and is closed; a session that does not reach one
// within a second, and a client still negotiating, is closed outright. Shutdown waits for every
// goroutine of the gateway. It is idempotent: after the first call it only waits.
func (g *Gateway) Shutdown(msg, hint string) error {
	g.applyMu.Lock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		g.applyMu.Unlock()
		g.wg.Wait()
		return nil
	}
	g.closed = true
	close(g.done)
	for _, ln := range g.listeners {
		ln.Close()
	}
	clear(g.listeners)
	g.stats.listeners.Store(0)
	var ending []*conn
	d := decision{reason: ReasonOther, msg: msg, hint: hint}
	for c := range g.conns {
		if c.admitted {
			c.revokeWith(d)
			ending = append(ending, c)
			continue
		}
		c.setEnd("gateway closed")
		c.kill()
	}
	g.mu.Unlock()
	// The relays (the reactor among them) write the ErrorResponses; then everything closes.
	timer := time.NewTimer(revokeWait)
wait:
	for _, c := range ending {
		select {
		case <-c.ended:
		case <-timer.C:
			break wait
		}
	}
	timer.Stop()
	g.mu.Lock()
	for c := range g.conns {
		c.setEnd("gateway closed")
		c.kill()
	}
	g.mu.Unlock()
	for _, r := range g.reactors {
		r.stop()
	}
	g.applyMu.Unlock()
	g.wg.Wait()
	return nil
}

func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// listener is one bound endpoint address.
type listener struct {
	addr netip.AddrPort
	ln   *net.TCPListener
}

// serve accepts connections on l until it is closed.
func (g *Gateway) serve(l *listener) {
	defer g.wg.Done()
	var backoff time.Duration
	for {
		tc, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.log.Warn("accept", "addr", l.addr, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-g.done:
				return
			}
		}
		backoff = 0
		c := g.newConn(l.addr, tc)
		if c == nil {
			tc.Close()
			return
		}
		go c.run()
	}
}

// newConn registers an accepted connection; nil if the gateway is closed.
func (g *Gateway) newConn(listen netip.AddrPort, tc *net.TCPConn) *conn {
	client := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if ta, ok := tc.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	c := &conn{g: g, listen: listen, client: client, raw: tc, ended: make(chan struct{})}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.nextID++
	c.id = g.nextID
	g.conns[c] = struct{}{}
	g.wg.Add(1)
	return c
}

// admit marks c admitted under the policy p it was decided with. It reports false, with the
// current policy, if the policy changed since: the caller decides again, so that a session
// admitted concurrently with an Apply is either seen by that Apply's revocation or decided
// under the new policy.
func (g *Gateway) admit(c *conn, p *policy) (*policy, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.policy.Load(); cur != p {
		return cur, false
	}
	c.admitted = true
	return p, true
}

// forget unregisters c once its goroutine is done.
func (g *Gateway) forget(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	if c.admitted {
		g.ended.in += c.bytesIn.Load()
		g.ended.out += c.bytesOut.Load()
	}
	g.mu.Unlock()
	g.wg.Done()
}

// SessionInfo describes one open session.
type SessionInfo struct {
	ID         uint64 // unique within the gateway, also in its log lines
	Endpoint   string // ARM ID of the endpoint
	Kind       Kind
	Server     string // ARM ID of the server
	ServerName string
	Listen     netip.AddrPort // the endpoint address the client dialed
	Client     netip.AddrPort // the client's source address
	TLS        bool           // the client negotiated TLS (SSLRequest)
	Started    time.Time
	BytesIn    uint64 // client to server
	BytesOut   uint64 // server to client
}

// Sessions returns the admitted sessions that are open, oldest first.
func (g *Gateway) Sessions() []SessionInfo {
	g.mu.Lock()
	out := make([]SessionInfo, 0, len(g.conns))
	for c := range g.conns {
		if !c.admitted {
			continue
		}
		out = append(out, SessionInfo{
			ID: c.id, Endpoint: c.ep.ID, Kind: c.ep.Kind, Server: c.ep.Server, ServerName: c.ep.ServerName,
			Listen: c.listen, Client: c.client, TLS: c.tls != nil, Started: c.started,
			BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		})
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ServerSessions returns the admitted open sessions of the server with ARM ID server (compared
// without regard to case, as ARM IDs are), through any of its endpoints, oldest first.
func (g *Gateway) ServerSessions(_ context.Context, server string) ([]SessionInfo, error) {
	all := g.Sessions()
	out := all[:0]
	for _, s := range all {
		if strings.EqualFold(s.Server, server) {
			out = append(out, s)
		}
	}
	return out, nil
}
