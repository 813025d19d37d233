//go:build !linux

package gateway

import (
	"errors"
	"log/slog"
	"net"
)

// Without epoll there is no reactor: goroutines relay every session.
type reactor struct{}

type rsess struct{}

func newReactor(*slog.Logger) (*reactor, error) {
	return nil, errors.New("the event loop needs Linux")
}

func (*reactor) run()                              {}
func (*reactor) stop()                             {}
func (*reactor) handoff(*conn, *net.UnixConn) bool { return false }
func (*rsess) kill()                               {}
func (*rsess) revoke()                             {}
