package store

import (
	"context"
	"sync"
)

// Broadcast fans a signal out to subscribers: the Notify of a backend. Each subscriber's channel
// holds one value, so a subscriber that does not keep up misses values, never the last one. The
// zero value is ready to use; it is safe for concurrent use.
type Broadcast struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

// subscriber is one Subscribe channel.
type subscriber struct {
	ch   chan struct{}
	stop func() bool // stops the context.AfterFunc that unsubscribes it
}

// Subscribe returns a channel that receives a value after each Signal, closed when ctx is done
// or the Broadcast is closed (at once if it is).
func (b *Broadcast) Subscribe(ctx context.Context) <-chan struct{} {
	s := &subscriber{ch: make(chan struct{}, 1)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s.ch
	}
	if b.subs == nil {
		b.subs = map[*subscriber]struct{}{}
	}
	b.subs[s] = struct{}{}
	s.stop = context.AfterFunc(ctx, func() { b.unsubscribe(s) })
	return s.ch
}

func (b *Broadcast) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Signal gives every subscriber a value, unless one is already waiting in its channel.
func (b *Broadcast) Signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.ch <- struct{}{}:
		default: // a value is already pending
		}
	}
}

// Close closes every subscriber's channel and reports whether it was closed already.
func (b *Broadcast) Close() (already bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return true
	}
	b.closed = true
	for s := range b.subs {
		s.stop()
		close(s.ch)
	}
	b.subs = nil
	return false
}
