package remote

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/pglink/pglink/internal/gateway"
)

// The handoff channel moves a gateway process's sockets to its successor (pglink gateway
// --replace), as PgBouncer's online restart does. It is a unix stream socket beside the control
// socket, with the same access rule. Messages are a 4-byte big-endian length and a JSON
// envelope {"fds":n,"body":…} of at most MaxMessage bytes; when n > 0, the n file descriptors
// follow in batches of at most fdBatch, each batch sent with SCM_RIGHTS on a single byte, so
// that a reader that reads exactly each length never reads past a message into descriptors.
//
// The exchange, version 1:
//
//	successor   → HandoffHello{Version, PID, DrainGrace}
//	predecessor → HandoffState{…} with descriptors: the lock file, the control socket's
//	              listener, each endpoint listener (in Listeners' order), then for each plain
//	              session its client and server sockets (in Sessions' order)
//	successor   → HandoffAck{OK}   (it accepts on the listeners and relays the sessions)
//	successor   → gateway.Snapshot … each policy it applies afterwards, so that the predecessor
//	              revokes the sessions it still drains; the channel closes when either exits.
//
// A predecessor of another version answers HandoffState{Error} and nothing moves.

// fdBatch is how many descriptors one SCM_RIGHTS message carries (the kernel allows 253).
const fdBatch = 200

// handoffWriteTimeout bounds sending one message to a peer that does not read.
const handoffWriteTimeout = 10 * time.Second

// HandoffHello opens a handoff.
type HandoffHello struct {
	Version int `json:"version"`
	PID     int `json:"pid"`
	// DrainGrace is how long the predecessor lets the sessions it keeps (TLS) run before it
	// ends them; zero leaves it to the predecessor.
	DrainGrace time.Duration `json:"drainGrace,omitempty"`
}

// HandoffState is what the predecessor hands over.
type HandoffState struct {
	Version   int                      `json:"version"`
	PID       int                      `json:"pid"`
	Error     string                   `json:"error,omitempty"`
	Snapshot  *gateway.Snapshot        `json:"snapshot,omitempty"`
	Certs     *Certs                   `json:"certs,omitempty"`
	Listeners []string                 `json:"listeners,omitempty"` // endpoint addresses, in descriptor order
	Sessions  []gateway.SessionHandoff `json:"sessions,omitempty"`
}

// HandoffAck is the successor's answer to HandoffState.
type HandoffAck struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// HandoffConn is one end of a handoff channel. It is not safe for concurrent use.
type HandoffConn struct {
	c   *net.UnixConn
	PID int // the peer's process id
}

// DialHandoff connects to a predecessor's handoff socket.
func DialHandoff(ctx context.Context, path string) (*HandoffConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("dial gateway handoff socket: %w", err)
	}
	return &HandoffConn{c: nc.(*net.UnixConn)}, nil
}

// AcceptHandoff accepts a successor on ln, refusing peers of another uid.
func AcceptHandoff(ln *net.UnixListener) (*HandoffConn, error) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, pid, err := peerCred(c)
		if err != nil || uid != os.Geteuid() {
			c.Close()
			continue
		}
		return &HandoffConn{c: c, PID: pid}, nil
	}
}

// Close closes the channel.
func (h *HandoffConn) Close() error { return h.c.Close() }

// CloseOnDone closes the channel when ctx is done, which ends a Receive in progress.
func (h *HandoffConn) CloseOnDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { h.c.Close() })
}

type envelope struct {
	FDs  int             `json:"fds"`
	Body json.RawMessage `json:"body"`
}

// Send sends v and files, failing if the peer does not take them within handoffWriteTimeout.
// The files stay open; the caller closes them.
func (h *HandoffConn) Send(v any, files []*os.File) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b, err := json.Marshal(envelope{FDs: len(files), Body: body})
	if err != nil {
		return err
	}
	if len(b) > MaxMessage {
		return ErrTooLarge
	}
	h.c.SetWriteDeadline(time.Now().Add(handoffWriteTimeout))
	defer h.c.SetWriteDeadline(time.Time{})
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	if _, err := h.c.Write(append(msg, b...)); err != nil {
		return fmt.Errorf("send handoff message: %w", err)
	}
	for len(files) > 0 {
		n := min(len(files), fdBatch)
		fds := make([]int, n)
		for i, f := range files[:n] {
			// Not f.Fd(), which would make the socket (shared with its other copies) blocking.
			rc, err := f.SyscallConn()
			if err != nil {
				return fmt.Errorf("send descriptors: %w", err)
			}
			rc.Control(func(fd uintptr) { fds[i] = int(fd) })
		}
		if _, _, err := h.c.WriteMsgUnix([]byte{'F'}, syscall.UnixRights(fds...), nil); err != nil {
			return fmt.Errorf("send descriptors: %w", err)
		}
		files = files[n:]
	}
	return nil
}

// Receive reads one message into v and returns the descriptors that came with it, which the
// caller owns.
func (h *HandoffConn) Receive(v any) ([]*os.File, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(h.c, hdr[:]); err != nil {
		return nil, fmt.Errorf("read handoff message: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxMessage {
		return nil, ErrTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(h.c, b); err != nil {
		return nil, fmt.Errorf("read handoff message: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("decode handoff message: %w", err)
	}
	var files []*os.File
	oob := make([]byte, syscall.CmsgSpace(fdBatch*4))
	for len(files) < env.FDs {
		var one [1]byte
		_, oobn, _, _, err := h.c.ReadMsgUnix(one[:], oob)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("read descriptors: %w", err)
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("parse descriptors: %w", err)
		}
		got := 0
		for _, m := range msgs {
			fds, err := syscall.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				syscall.CloseOnExec(fd)
				files = append(files, os.NewFile(uintptr(fd), "handoff"))
				got++
			}
		}
		if got == 0 {
			closeAll(files)
			return nil, errors.New("read descriptors: a batch without descriptors")
		}
	}
	if len(files) != env.FDs {
		closeAll(files)
		return nil, fmt.Errorf("got %d descriptors; want %d", len(files), env.FDs)
	}
	if err := json.Unmarshal(env.Body, v); err != nil {
		closeAll(files)
		return nil, fmt.Errorf("decode handoff message: %w", err)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
