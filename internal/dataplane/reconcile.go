package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pglink/pglink/internal/engine"
	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/providers/postgresql"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Gate is the gateway as the reconciler drives it.
type Gate interface {
	Apply(s gateway.Snapshot) error
}

// Engine is the engine as the reconciler drives it.
type Engine interface {
	Sockets
	// Ensure starts the server's PostgreSQL if running is true and it is not running, and
	// stops it if running is false and it runs.
	Ensure(ctx context.Context, id resource.ID, running bool) error
	// Has reports whether the server's cluster is on this host; Delete stops and removes it.
	Has(id resource.ID) bool
	Delete(ctx context.Context, id resource.ID) error
}

// Reconciler keeps the data plane in line with the store: the gateway's policy after every
// change, and each server's PostgreSQL process running or stopped as its state says.
type Reconciler struct {
	St     store.Store
	Gate   Gate
	Engine Engine
	Scope  Scope // the node's part of the data plane: its servers and endpoints
	Log    *slog.Logger
	// Applied, if set, is called after each policy the gateway applied, with its revision.
	Applied func(rev int64)
	// Every is how often servers are checked even without changes (a PostgreSQL that died is
	// restarted within this time). Zero means 2s.
	Every time.Duration

	collected int64 // the change feed is read for deleted servers up to this revision
	lastErr   atomic.Pointer[error]

	// Owned by the goroutine that calls Sync and Run.
	cache    *policyCache
	sent     bool      // the last Apply succeeded: the gateway holds the cache's policy
	loadedAt time.Time // when the cache was last loaded whole
}

// reloadEvery is how often the policy is compiled whole rather than from the change feed: a
// safety net that costs one full read of servers and private endpoints.
const reloadEvery = 10 * time.Minute

// Err returns why the last policy could not be applied, nil if it was.
func (r *Reconciler) Err() error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run reconciles until ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	log := r.Log.With("component", "dataplane")
	every := r.Every
	if every <= 0 {
		every = 2 * time.Second
	}
	notify := r.St.Notify(ctx)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var backoff retryBackoff
	first := true
	for {
		var retry <-chan time.Time
		err := r.Sync(ctx)
		if first {
			r.servers(ctx, log)
			first = false
		}
		if err != nil && ctx.Err() == nil {
			log.Error("apply data-plane policy", "err", err)
			r.lastErr.Store(&err)
			retry = backoff.next() // the store may be back in a moment: writes wait for this
		} else {
			r.lastErr.Store(nil)
			backoff.reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		case <-retry:
		case <-tick.C:
			if r.cache != nil && time.Since(r.loadedAt) > reloadEvery {
				r.cache.loaded = false
			}
			r.servers(ctx, log)
			r.collect(ctx, log)
		}
	}
}

// retryBackoff spaces the retries of a failed reconciliation: 50 ms, doubling up to 2 s.
type retryBackoff struct{ d time.Duration }

func (b *retryBackoff) next() <-chan time.Time {
	b.d = min(max(2*b.d, 50*time.Millisecond), 2*time.Second)
	return time.After(b.d)
}

func (b *retryBackoff) reset() { b.d = 0 }

// Sync brings the gateway's policy up to the store's current revision: the changes since the
// last round, or everything the first time. Run calls it after every change; the caller of
// Sync must not run it concurrently with Run.
func (r *Reconciler) Sync(ctx context.Context) error {
	if r.cache == nil {
		r.cache = newPolicyCache(r.Engine, r.Scope)
	}
	whole := !r.cache.loaded
	changed, err := r.cache.update(ctx, r.St)
	if err != nil {
		return err
	}
	if whole {
		r.loadedAt = time.Now()
	}
	snap := gateway.Snapshot{Revision: r.cache.rev, Unchanged: true}
	if changed || !r.sent {
		snap = r.cache.snapshot()
	}
	r.sent = false
	if err := r.Gate.Apply(snap); err != nil {
		return err
	}
	r.sent = true
	if r.Applied != nil {
		r.Applied(snap.Revision)
	}
	return nil
}

// servers makes each settled server's process match its state. Servers in a transition
// (Starting, Stopping, …) belong to the operation that moves them.
func (r *Reconciler) servers(ctx context.Context, log *slog.Logger) {
	if r.cache == nil || !r.cache.loaded {
		return // the policy round that failed is retried first
	}
	for _, id := range r.cache.local() {
		// Re-read the state right before acting: an operation may have moved the server since.
		var s postgresql.Server
		if err := r.St.View(ctx, func(tx store.Tx) error {
			cur, err := tx.Get(ctx, id.Key())
			if err != nil {
				return err
			}
			return json.Unmarshal(cur.Body, &s)
		}); err != nil {
			// Gone since the list: nothing to do. Any other failure: the next round retries.
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				log.Error("read server", "server", id, "err", err)
			}
			continue
		}
		if dp := s.Properties.DataPlane; dp == nil || !r.Scope.Serves(dp.Node, dp.Address) {
			continue // another node's
		}
		var want bool
		switch s.Properties.State {
		case resource.ServerReady, resource.ServerUpdating:
			want = true
		case resource.ServerStopped:
			want = false
		default:
			continue
		}
		err := r.Engine.Ensure(ctx, id, want)
		switch {
		case errors.Is(err, engine.ErrNoCluster):
			log.Debug("server has no cluster", "server", id)
		case err != nil && ctx.Err() == nil:
			log.Error("reconcile server", "server", id, "want_running", want, "err", err)
		}
	}
}

// collect removes the clusters on this host of servers deleted from the store, as the change
// feed tells: a server deleted by an operation on another node (a resource group delete) has
// its cluster here. A cluster is removed only if the feed says its server was deleted and the
// server is still absent, never for being unknown.
func (r *Reconciler) collect(ctx context.Context, log *slog.Logger) {
	for {
		changes, err := r.St.Changes(ctx, r.collected, 1000)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("read change feed", "err", err)
			}
			return
		}
		for _, c := range changes {
			if !c.Deleted {
				continue
			}
			id, err := resource.Parse(c.Key)
			if err != nil || !strings.EqualFold(id.Type(), resource.TypeServer) || !r.Engine.Has(id) {
				continue
			}
			err = r.St.View(ctx, func(tx store.Tx) error {
				_, err := tx.Get(ctx, id.Key())
				return err
			})
			if !errors.Is(err, store.ErrNotFound) {
				continue // created again since, or the store cannot tell now
			}
			if err := r.Engine.Delete(ctx, id); err != nil {
				if ctx.Err() == nil {
					log.Error("remove the cluster of a deleted server", "server", c.Key, "err", err)
				}
				return // the next round tries again from here
			}
			log.Info("removed the cluster of a deleted server", "server", c.Key)
		}
		if len(changes) == 0 {
			return
		}
		r.collected = changes[len(changes)-1].Revision
		if len(changes) < 1000 {
			return
		}
	}
}
