package gateway

import "syscall"

// detached is a session the event loop gave up: its state and its two sockets, which the
// receiver owns.
type detached struct {
	c        *conn
	f        framer
	toServer []byte
	toClient []byte
	cfd, ufd int
}

// detach makes the loop give up every session it can hand over, and returns them. A session
// being revoked or closed stays, to end here.
func (r *reactor) detach() []detached {
	out := make(chan []detached, 1)
	if !r.postCmd(rcmd{kind: cmdDetach, out: out}) {
		return nil
	}
	return <-out
}

// detachAll runs in the loop: each session leaves the epoll set with what it had buffered, and
// its goroutine is released.
func (r *reactor) detachAll() []detached {
	var out []detached
	seen := map[*rsess]bool{}
	for _, s := range r.byFd {
		if seen[s] || s.closed || s.revoked || s.finishing || s.tc != nil {
			continue
		}
		seen[s] = true
		d := detached{c: s.c, f: s.f, cfd: s.cfd, ufd: s.ufd}
		if s.toUp != nil {
			d.toServer = append([]byte(nil), (*s.toUp)[s.upOff:]...)
			release(s.toUp)
			s.toUp = nil
		}
		if s.toCl != nil {
			d.toClient = append([]byte(nil), (*s.toCl)[s.clOff:]...)
			release(s.toCl)
			s.toCl = nil
		}
		if s.cEv != 0 {
			syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, s.cfd, nil)
		}
		if s.uEv != 0 {
			syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, s.ufd, nil)
		}
		delete(r.byFd, int32(s.cfd))
		delete(r.byFd, int32(s.ufd))
		delete(r.timed, s)
		s.closed = true // the sockets are no longer the loop's to close
		s.c.setEnd("handed over to a successor gateway")
		close(s.done)
		out = append(out, d)
	}
	return out
}

// adopt runs in the loop: it adds a handed-over session and resumes its pending output.
func (r *reactor) adopt(s *rsess) {
	r.add(s)
	if s.closed {
		return
	}
	if s.toUp != nil {
		r.interest(s, s.cfd, s.cEv&^syscall.EPOLLIN)
		r.interest(s, s.ufd, s.uEv|syscall.EPOLLOUT)
	}
	if s.toCl != nil {
		r.interest(s, s.ufd, s.uEv&^syscall.EPOLLIN)
		r.interest(s, s.cfd, s.cEv|syscall.EPOLLOUT)
	}
}

// newAdopted makes the reactor session of a handed-over session.
func (r *reactor) newAdopted(c *conn, cfd, ufd int, toServer, toClient []byte, f framer) *rsess {
	s := &rsess{r: r, c: c, cfd: cfd, ufd: ufd, done: make(chan struct{}), f: f}
	if len(toServer) > 0 {
		s.toUp = relayBufs.Get().(*[]byte)
		*s.toUp = append((*s.toUp)[:0], toServer...)
	}
	if len(toClient) > 0 {
		s.toCl = relayBufs.Get().(*[]byte)
		*s.toCl = append((*s.toCl)[:0], toClient...)
	}
	return s
}

// relayAdopted gives the loop a handed-over session and waits until it is done with it; false
// if the loop has stopped (the caller closes the sockets).
func (r *reactor) relayAdopted(s *rsess) bool {
	if !r.postCmd(rcmd{kind: cmdAdopt, s: s}) {
		return false
	}
	<-s.done
	return true
}
