package storetest

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/pglink/pglink/internal/store"
)

// Hand-written fakes around a real store, for tests of the store's callers.

// ErrInjected is the error FaultTx and FaultStore return.
var ErrInjected = errors.New("injected store failure")

// FaultStore is a store whose transactions fail to read Key (see FaultTx).
type FaultStore struct {
	store.Store
	Key string
}

// View runs fn in a read transaction that fails to read s.Key.
func (s FaultStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(FaultTx{tx, s.Key}) })
}

// Update runs fn in a read-write transaction that fails to read s.Key.
func (s FaultStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(FaultTx{tx, s.Key}) })
}

// FaultTx is a transaction whose Get of Key fails with ErrInjected: a store failure other than
// ErrNotFound.
type FaultTx struct {
	store.Tx
	Key string
}

// Get returns ErrInjected for t.Key and reads any other key.
func (t FaultTx) Get(ctx context.Context, key string) (store.Resource, error) {
	if key == t.Key {
		return store.Resource{}, ErrInjected
	}
	return t.Tx.Get(ctx, key)
}

// ErrNested is the error NestGuard returns for a transaction begun inside another.
var ErrNested = errors.New("transaction begun inside another")

// NestGuard is a store that fails a transaction begun while another is open (ErrNested). Tests
// that use it run one request at a time, so an open transaction means a nested one.
type NestGuard struct {
	store.Store
	open atomic.Int32
}

// View runs fn in a read transaction unless another transaction is open.
func (g *NestGuard) View(ctx context.Context, fn func(store.Tx) error) error {
	if g.open.Add(1) > 1 {
		g.open.Add(-1)
		return ErrNested
	}
	defer g.open.Add(-1)
	return g.Store.View(ctx, fn)
}

// Update runs fn in a read-write transaction unless another transaction is open.
func (g *NestGuard) Update(ctx context.Context, fn func(store.Tx) error) error {
	if g.open.Add(1) > 1 {
		g.open.Add(-1)
		return ErrNested
	}
	defer g.open.Add(-1)
	return g.Store.Update(ctx, fn)
}
