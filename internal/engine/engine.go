// Package engine runs the PostgreSQL servers behind flexible servers. Records is the engine of
// a control plane without a data plane: every action succeeds at once and nothing runs, so a
// server is only a record. Local, the engine that runs a real PostgreSQL cluster per server
// (initdb / pg_ctl), implements the same methods.
package engine

import (
	"context"

	"github.com/pglink/pglink/internal/resource"
)

// Spec is what an engine needs to create a server.
type Spec struct {
	ID         resource.ID
	Version    string // major version, e.g. "16"
	AdminLogin string
	// AdminVerifier is the SCRAM-SHA-256 verifier of the administrator's password (see
	// Verifier): the password itself is never handed to an engine.
	AdminVerifier string
}

// Records is an engine that keeps servers as records only. It is safe for concurrent use.
type Records struct{}

// Create does nothing.
func (Records) Create(ctx context.Context, s Spec) error { return nil }

// Start does nothing.
func (Records) Start(ctx context.Context, id resource.ID) error { return nil }

// Stop does nothing.
func (Records) Stop(ctx context.Context, id resource.ID) error { return nil }

// Restart does nothing.
func (Records) Restart(ctx context.Context, id resource.ID) error { return nil }

// Delete does nothing.
func (Records) Delete(ctx context.Context, id resource.ID) error { return nil }

// SetPassword does nothing.
func (Records) SetPassword(ctx context.Context, id resource.ID, login, verifier string) error {
	return nil
}

// MinorVersion returns the minor version a new server of major version v reports.
func (Records) MinorVersion(v string) string { return "0" }

// Versions returns every major version a flexible server may have: records need no binaries.
func (Records) Versions() []string { return []string{"11", "12", "13", "14", "15", "16", "17"} }

// Socket returns "": a record has no socket.
func (Records) Socket(id resource.ID) string { return "" }

// Running returns false: nothing runs.
func (Records) Running(id resource.ID) bool { return false }

// Ensure does nothing.
func (Records) Ensure(ctx context.Context, id resource.ID, running bool) error { return nil }
