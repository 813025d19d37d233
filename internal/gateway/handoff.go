package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// A gateway process hands its listening sockets to its successor (see pglink gateway
// --replace): the successor Inherits duplicates of them, so that the kernel's accept queues
// carry on and no client is refused during the switch, and the predecessor StopsAccepting.

// handoffState is what a Gateway inherited from a predecessor or gave to a successor.
type handoffState struct {
	inherited map[netip.AddrPort]*net.TCPListener // not yet taken by Apply
	stopped   bool                                // StopAccepting was called: bind nothing
}

// errNotAccepting is why an address is not bound after StopAccepting.
var errNotAccepting = errors.New("the gateway has handed its listeners to a successor")

// listen returns the listener for addr: an inherited one, or a new one. Called with applyMu.
func (g *Gateway) listen(addr netip.AddrPort) (*net.TCPListener, error) {
	if ln, ok := g.handoff.inherited[addr]; ok {
		delete(g.handoff.inherited, addr)
		return ln, nil
	}
	if g.handoff.stopped {
		return nil, errNotAccepting
	}
	return net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
}

// Inherit gives the gateway listening sockets that a predecessor bound, by address: Apply
// serves an address from its inherited socket instead of binding it, and the first Apply
// closes those it does not use. Inherit takes ownership of the files; call it before Apply.
func (g *Gateway) Inherit(files map[netip.AddrPort]*os.File) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	var errs []error
	for addr, f := range files {
		nl, err := net.FileListener(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("inherit listener %s: %w", addr, err))
			continue
		}
		tl, ok := nl.(*net.TCPListener)
		if !ok {
			nl.Close()
			errs = append(errs, fmt.Errorf("inherit listener %s: not TCP", addr))
			continue
		}
		if g.handoff.inherited == nil {
			g.handoff.inherited = map[netip.AddrPort]*net.TCPListener{}
		}
		g.handoff.inherited[netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())] = tl
	}
	return errors.Join(errs...)
}

// closeUnusedInherited closes inherited listeners that Apply did not take. Called with applyMu.
func (g *Gateway) closeUnusedInherited() {
	for addr, ln := range g.handoff.inherited {
		ln.Close()
		delete(g.handoff.inherited, addr)
	}
}

// ListenerFiles returns a duplicate of each bound listening socket, by address, for a
// successor to Inherit. The caller closes the files.
func (g *Gateway) ListenerFiles() (map[netip.AddrPort]*os.File, error) {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	out := make(map[netip.AddrPort]*os.File, len(g.listeners))
	for addr, ln := range g.listeners {
		f, err := ln.File()
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("duplicate listener %s: %w", addr, err)
		}
		out[addr] = f
	}
	return out, nil
}

// StopAccepting closes the gateway's listeners, whose successor accepts on its own copies, and
// keeps its sessions. Later snapshots still revoke sessions but bind nothing.
func (g *Gateway) StopAccepting() {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	g.handoff.stopped = true
	for addr, ln := range g.listeners {
		ln.Close()
		delete(g.listeners, addr)
	}
	g.stats.listeners.Store(0)
}

// SessionHandoff is what a successor needs of a plain session besides its two sockets: who it
// is, for revocation and logs, and the bytes the predecessor read and had not yet relayed.
type SessionHandoff struct {
	ID       uint64         `json:"id"`
	Listen   netip.AddrPort `json:"listen"`
	Client   netip.AddrPort `json:"client"`
	Endpoint string         `json:"endpoint"`
	Started  time.Time      `json:"started"`
	BytesIn  uint64         `json:"bytesIn"`
	BytesOut uint64         `json:"bytesOut"`
	ToServer []byte         `json:"toServer,omitempty"` // read from the client, not yet written to the server
	ToClient []byte         `json:"toClient,omitempty"` // read from the server, not yet written to the client
	// Framer is where the server-to-client stream stands between message boundaries.
	Framer FramerState `json:"framer"`
}

// FramerState is the state of the server-to-client message framer.
type FramerState struct {
	Rem    int64  `json:"rem"`
	Hdr    []byte `json:"hdr,omitempty"`
	Broken bool   `json:"broken,omitempty"`
}

// DetachPlain stops relaying the plain sessions that the event loop relays and returns them for
// a successor: each one's state, and its client and server sockets (which the caller owns).
// Nothing is lost: what the gateway had read and not yet written is in the state, the rest
// waits in the sockets. Sessions being revoked or closed, TLS sessions (whose keys cannot be
// handed over) and sessions relayed by goroutines stay and end here.
func (g *Gateway) DetachPlain() ([]SessionHandoff, [][2]*os.File) {
	var ds []detached
	for _, r := range g.reactors {
		ds = append(ds, r.detach()...)
	}
	hs := make([]SessionHandoff, 0, len(ds))
	socks := make([][2]*os.File, 0, len(ds))
	for _, d := range ds {
		c, f := d.c, d.f
		h := SessionHandoff{
			ID: c.id, Listen: c.listen, Client: c.client, Started: c.started,
			BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
			ToServer: d.toServer, ToClient: d.toClient,
			Framer: FramerState{Rem: f.rem, Hdr: append([]byte(nil), f.hdr[:f.hn]...), Broken: f.broken},
		}
		if c.ep != nil {
			h.Endpoint = c.ep.ID
		}
		hs = append(hs, h)
		socks = append(socks, [2]*os.File{os.NewFile(uintptr(d.cfd), "client"), os.NewFile(uintptr(d.ufd), "server")})
	}
	for _, d := range ds {
		<-d.c.ended // gone from Sessions and Stats
	}
	return hs, socks
}

// Adopt relays sessions that a predecessor detached (DetachPlain), with their sockets, which
// it takes ownership of. Call it after Apply: a session that the policy in force does not
// admit is revoked at once, with 57P01, as by Apply.
func (g *Gateway) Adopt(hs []SessionHandoff, socks [][2]*os.File) error {
	if len(hs) != len(socks) {
		for _, p := range socks {
			p[0].Close()
			p[1].Close()
		}
		return fmt.Errorf("adopt: %d sessions, %d socket pairs", len(hs), len(socks))
	}
	var errs []error
	for i, h := range hs {
		cfd, err1 := dupFile(socks[i][0])
		ufd, err2 := dupFile(socks[i][1])
		socks[i][0].Close()
		socks[i][1].Close()
		r := g.loop(uint64(i))
		if err := errors.Join(err1, err2); err != nil || r == nil {
			if cfd >= 0 {
				syscall.Close(cfd)
			}
			if ufd >= 0 {
				syscall.Close(ufd)
			}
			errs = append(errs, fmt.Errorf("adopt session %d from %s: %v", h.ID, h.Client, err))
			continue
		}
		c := &conn{g: g, listen: h.Listen, client: h.Client, ended: make(chan struct{}), started: h.Started}
		c.bytesIn.Store(h.BytesIn)
		c.bytesOut.Store(h.BytesOut)
		var f framer
		f.rem, f.broken = h.Framer.Rem, h.Framer.Broken
		f.hn = copy(f.hdr[:], h.Framer.Hdr)
		s := r.newAdopted(c, cfd, ufd, h.ToServer, h.ToClient, f)
		c.rs = s
		p := g.policy.Load()
		ep := p.byAddr[h.Listen]
		if ep == nil {
			ep = &Endpoint{Addr: h.Listen, ID: h.Endpoint}
		}
		c.ep = ep
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			syscall.Close(cfd)
			syscall.Close(ufd)
			return errors.Join(append(errs, ErrClosed)...)
		}
		g.nextID++
		c.id = g.nextID
		c.admitted = true
		g.conns[c] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		g.log.Info("session adopted", "session", c.id, "was", h.ID, "listen", h.Listen, "client", h.Client, "endpoint", ep.ID)
		go func() {
			out := outcome{decision: "admitted"}
			start := g.now()
			defer func() {
				c.log(out, start)
				close(c.ended)
				g.forget(c)
			}()
			if !r.relayAdopted(s) {
				syscall.Close(cfd)
				syscall.Close(ufd)
			}
		}()
	}
	// Decide again under the policy in force, as for every session after an Apply.
	g.applyMu.Lock()
	g.revoke(g.policy.Load())
	g.applyMu.Unlock()
	return errors.Join(errs...)
}

// dupFile duplicates f's descriptor (close-on-exec), leaving its blocking mode as it is.
func dupFile(f *os.File) (int, error) { return dupFd(f) }
