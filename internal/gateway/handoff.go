package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
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
