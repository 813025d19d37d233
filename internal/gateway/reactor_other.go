//go:build !linux

package gateway

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
)

// Without epoll there is no reactor: goroutines relay every session.
type reactor struct{}

type rsess struct{}

func newReactor(*slog.Logger, int) (*reactor, error) {
	return nil, errors.New("the event loop needs Linux")
}

func (*reactor) run()                              {}
func (*reactor) stop()                             {}
func (*reactor) handoff(*conn, *net.UnixConn) bool { return false }
func (*rsess) kill()                               {}
func (*rsess) revoke()                             {}

type detached struct {
	c                  *conn
	f                  framer
	toServer, toClient []byte
	cfd, ufd           int
}

func (*reactor) detach() []detached { return nil }
func (*reactor) newAdopted(*conn, int, int, []byte, []byte, framer) *rsess {
	return nil
}
func (*reactor) relayAdopted(*rsess) bool { return false }

func dupFd(syscall.Conn) (int, error) { return -1, errors.New("handing sessions over needs Linux") }
