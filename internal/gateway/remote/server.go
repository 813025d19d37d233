package remote

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/gateway"
)

// Gate is the gateway as the Server drives it. *gateway.Gateway implements it.
type Gate interface {
	Apply(s gateway.Snapshot) error
	Applied() int64
	Stats() gateway.Stats
	ServerSessions(ctx context.Context, server string) ([]gateway.SessionInfo, error)
}

var _ Gate = (*gateway.Gateway)(nil)

// busyMessage ends the answer to a hello while another client is attached.
const busyMessage = "controls this gateway"

// writeTimeout bounds writing one answer to a client that does not read.
const writeTimeout = 10 * time.Second

// Server answers the control channel of one gateway. Its fields are set before Serve and not
// changed afterwards.
type Server struct {
	Gate Gate
	// SetCerts installs certificate material; nil answers "certs" with an error.
	SetCerts func(Certs) error
	// Stop is called once, after the answer to a "stop" request is sent, with its reason; it
	// should end Serve's context. Nil answers "stop" with an error.
	Stop func(reason string)
	Log  *slog.Logger // nil discards

	mu   sync.Mutex
	peer int // pid of the attached client, 0 when none; guarded by mu
}

// Serve answers clients on ln, one at a time, until ctx is done; then it closes ln and the
// attached client's connection and returns once their goroutines are done. It takes ownership
// of ln.
func (s *Server) Serve(ctx context.Context, ln *net.UnixListener) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "gateway-control")
	var wg sync.WaitGroup
	conns := map[*net.UnixConn]struct{}{}
	var mu sync.Mutex // guards conns
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept control connection: %w", err)
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c, log)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers one client until it goes.
func (s *Server) serveConn(c *net.UnixConn, log *slog.Logger) {
	uid, pid, err := peerCred(c)
	if err != nil {
		log.Warn("control connection refused", "err", err)
		s.reply(c, response{Error: fmt.Sprintf("identify peer: %v", err)})
		return
	}
	if uid != os.Geteuid() {
		log.Warn("control connection refused", "peer_uid", uid, "peer_pid", pid)
		s.reply(c, response{Error: fmt.Sprintf("uid %d may not control this gateway; run as uid %d", uid, os.Geteuid())})
		return
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 64<<10), MaxMessage)
	var req request
	if !s.read(sc, &req, log) {
		return
	}
	if req.Op != "hello" || req.Version != Version {
		msg := fmt.Sprintf("control protocol version %d spoken; this gateway speaks version %d: run the same pglink binary for serve and gateway, or replace the gateway", req.Version, Version)
		if req.Op != "hello" {
			msg = fmt.Sprintf("first control message is %q; want hello", req.Op)
		}
		log.Warn("control connection refused", "peer_pid", pid, "err", msg)
		s.reply(c, response{Error: msg})
		return
	}
	s.mu.Lock()
	busy := s.peer
	if busy == 0 {
		s.peer = pid
	}
	s.mu.Unlock()
	if busy != 0 {
		log.Warn("control connection refused: another client is attached", "peer_pid", pid, "attached_pid", busy)
		s.reply(c, response{Error: fmt.Sprintf("another pglink (pid %d) %s", busy, busyMessage)})
		return
	}
	defer func() {
		s.mu.Lock()
		s.peer = 0
		s.mu.Unlock()
		log.Info("control client detached", "peer_pid", pid)
	}()
	log.Info("control client attached", "peer_pid", pid)
	if !s.reply(c, response{OK: true, Version: Version, PID: os.Getpid(), Applied: s.Gate.Applied()}) {
		return
	}
	for {
		req = request{}
		if !s.read(sc, &req, log) {
			return
		}
		resp, stop := s.handle(req)
		if !s.reply(c, resp) {
			return
		}
		if stop {
			log.Info("stop requested", "peer_pid", pid, "reason", req.Reason)
			s.Stop(req.Reason)
			// Hold the connection until Serve ends: the client learns the gateway is gone by EOF.
			io.Copy(io.Discard, c)
			return
		}
	}
}

// handle answers one request; stop reports that the gateway must stop once it is answered.
func (s *Server) handle(req request) (resp response, stop bool) {
	switch req.Op {
	case "ping":
		return response{OK: true, Applied: s.Gate.Applied()}, false
	case "apply":
		if req.Snapshot == nil {
			return response{Error: "apply without a snapshot"}, false
		}
		resp = response{OK: true}
		if err := s.Gate.Apply(*req.Snapshot); err != nil {
			if errors.Is(err, gateway.ErrClosed) {
				return response{Error: err.Error()}, false
			}
			resp.ApplyError = err.Error()
		}
		resp.Applied = s.Gate.Applied()
		return resp, false
	case "stats":
		st := s.Gate.Stats()
		return response{OK: true, Stats: &st}, false
	case "sessions":
		ss, err := s.Gate.ServerSessions(context.Background(), req.Server)
		if err != nil {
			return response{Error: err.Error()}, false
		}
		return response{OK: true, Sessions: ss}, false
	case "certs":
		if req.Certs == nil || s.SetCerts == nil {
			return response{Error: "certs not accepted"}, false
		}
		if err := s.SetCerts(*req.Certs); err != nil {
			return response{Error: err.Error()}, false
		}
		return response{OK: true}, false
	case "stop":
		if s.Stop == nil {
			return response{Error: "stop not accepted"}, false
		}
		return response{OK: true}, true
	}
	return response{Error: fmt.Sprintf("unknown op %q", req.Op)}, false
}

// read reads one request; false when the client is gone or broke the protocol.
func (s *Server) read(sc *bufio.Scanner, req *request, log *slog.Logger) bool {
	if !sc.Scan() {
		if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn("read control message", "err", err)
		}
		return false
	}
	if err := json.Unmarshal(sc.Bytes(), req); err != nil {
		log.Warn("decode control message", "err", err)
		return false
	}
	return true
}

// reply writes one answer; false if it cannot.
func (s *Server) reply(c *net.UnixConn, resp response) bool {
	b, err := encode(resp)
	if err != nil {
		b, _ = encode(response{Error: fmt.Sprintf("encode answer: %v", err)})
	}
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.Write(b)
	return err == nil
}
