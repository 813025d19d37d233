package postgresql

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// What each kind of operation leaves behind when it fails (see operation.Failure). No failure
// leaves a resource in a transitional state: every later request works.
//
//	server create         the engine's cluster and the server record are removed, as a delete
//	                      would; the reason stays on the operation and in the activity log
//	server update         the server as it was before the request, Ready
//	server start/stop/    the state the engine reports: Ready if PostgreSQL runs, else Stopped
//	restart and delete    (the record stays, so the delete can be retried)
//	firewall put/delete   the rules as they were; the server Ready
//	connection update     the connection's status as it was, provisioningState Succeeded
//	connection delete     the connection as it was, provisioningState Succeeded
func (p *Provider) registerFailures(w *operation.Workers) {
	w.RegisterFailure(kindCreate, p.failCreate)
	w.RegisterFailure(kindUpdate, p.failUpdate)
	w.RegisterFailure(kindDelete, p.failEngineState)
	w.RegisterFailure(kindAction, p.failEngineState)
	w.RegisterFailure(kindFirewallPut, failServerChild)
	w.RegisterFailure(kindFirewallDelete, failServerChild)
	w.RegisterFailure(kindConfigurationPut, failServerChild)
	w.RegisterFailure(kindConnectionUpdate, failConnection)
	w.RegisterFailure(kindConnectionDelete, failConnection)
}

// failCreate removes what a failed create made: the engine's cluster, then the record.
func (p *Provider) failCreate(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	if err := p.eng.Delete(ctx, id); err != nil {
		return nil, fmt.Errorf("remove the cluster of failed server %s: %w", id, err)
	}
	return func(ctx context.Context, tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id)
		if resource.KindOf(err) == resource.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if s.Properties.State != resource.ServerProvisioning {
			return nil // not the record this create made
		}
		return p.remove(ctx, tx, id)
	}, nil
}

// failUpdate puts the server back as it was before the update.
func (p *Provider) failUpdate(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	var in serverInput
	if len(op.Data) > 0 {
		if err := json.Unmarshal(op.Data, &in); err != nil {
			return nil, fmt.Errorf("decode input: %w", err)
		}
	}
	return func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.Get(ctx, id.Key()); err != nil {
			return nil // gone: nothing to put back
		}
		if in.Restore == nil {
			return setState(id, resource.ServerReady, nil)(ctx, tx)
		}
		prev := *in.Restore
		prev.Properties.State = resource.ServerReady
		_, err := arm.Save(ctx, tx, id, prev)
		return err
	}, nil
}

// Runner is what an engine may also tell: whether a server's PostgreSQL runs.
type Runner interface {
	Running(id resource.ID) bool
}

// failEngineState sets the server to the state its engine reports after a failed action or
// delete: Ready if PostgreSQL runs, Stopped if not. An engine that cannot tell leaves the
// state the action started from.
func (p *Provider) failEngineState(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	var state resource.ServerState
	if r, ok := p.eng.(Runner); ok {
		state = resource.ServerStopped
		if r.Running(id) {
			state = resource.ServerReady
		}
	}
	return func(ctx context.Context, tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id)
		if resource.KindOf(err) == resource.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		to := state
		if to == "" {
			to = resource.ServerReady
			if s.Properties.State == resource.ServerStarting {
				to = resource.ServerStopped
			}
		}
		return setState(id, to, nil)(ctx, tx)
	}, nil
}

// failServerChild leaves a firewall rule or server parameter as it was and the server Ready
// (it went Updating when the change was accepted).
func failServerChild(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	return func(ctx context.Context, tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id.Parent())
		if resource.KindOf(err) == resource.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if s.Properties.State != resource.ServerUpdating {
			return nil
		}
		return setState(id.Parent(), resource.ServerReady, nil)(ctx, tx)
	}, nil
}

// failConnection leaves the connection as it was, provisioningState Succeeded.
func failConnection(ctx context.Context, op operation.Op, cause error) (operation.Commit, error) {
	id, err := resource.Parse(op.ResourceID)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", op.ResourceID, err)
	}
	return func(ctx context.Context, tx store.Tx) error {
		var c Connection
		_, err := arm.Load(ctx, tx, id, &c)
		if resource.KindOf(err) == resource.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		c.Properties.ProvisioningState = "Succeeded"
		_, err = arm.Save(ctx, tx, id, c)
		return err
	}, nil
}
