package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

const (
	kindConnectionUpdate = "postgresql.connection.update"
	kindConnectionDelete = "postgresql.connection.delete"
)

// Connection is a private endpoint connection as stored and served.
type Connection struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Type       string               `json:"type"`
	Properties ConnectionProperties `json:"properties"`
}

// ConnectionProperties are a private endpoint connection's properties.
type ConnectionProperties struct {
	GroupIDs                          []string                 `json:"groupIds,omitempty"`
	PrivateEndpoint                   *SubResource             `json:"privateEndpoint,omitempty"`
	PrivateLinkServiceConnectionState resource.ConnectionState `json:"privateLinkServiceConnectionState"`
	ProvisioningState                 string                   `json:"provisioningState,omitempty"`
}

// SubResource is a reference to another resource.
type SubResource struct {
	ID string `json:"id"`
}

// connectionUpdate is the input of a connection update operation.
type connectionUpdate struct {
	State resource.ConnectionState `json:"state"`
}

// Connect implements the target side of a private endpoint: it validates the request and
// creates the connection, Approved for an automatic request and Pending for a manual one.
func (p *Provider) Connect(ctx context.Context, tx store.Tx, lr resource.LinkRequest) (resource.LinkResult, error) {
	var res resource.LinkResult
	s, _, err := loadServer(ctx, tx, lr.Target)
	if resource.KindOf(err) == resource.NotFound {
		return res, resource.Errorf(resource.Invalid, "PrivateLinkServiceNotFound",
			"The private link resource '%s' referenced by private endpoint '%s' was not found.", lr.Target, lr.Endpoint.Name())
	}
	if err != nil {
		return res, err
	}
	if len(lr.GroupIDs) != 1 || !strings.EqualFold(lr.GroupIDs[0], resource.PostgresGroupID) {
		return res, resource.Errorf(resource.Invalid, "InvalidPrivateEndpointGroupId",
			"Private endpoint '%s' requests group ids %v; a flexible server offers exactly one: '%s'.", lr.Endpoint.Name(), lr.GroupIDs, resource.PostgresGroupID)
	}
	if s.vnetIntegrated() {
		return res, resource.Errorf(resource.Invalid, "PrivateEndpointFeatureNotSupportedOnServer",
			"Private endpoints cannot be created for server '%s' because it uses private access (VNet integration). Use a server created with public access.", s.Name)
	}
	if err := checkChildQuota(ctx, tx, lr.Target, resource.TypeConnection, "private endpoint connections",
		p.limit(func(l Limits) int { return l.ConnectionsPerServer })); err != nil {
		return res, err
	}
	state := resource.ConnectionState{Status: resource.Approved, Description: "Auto-Approved", ActionsRequired: "None"}
	if lr.Manual {
		state = resource.ConnectionState{Status: resource.Pending, Description: lr.RequestMessage, ActionsRequired: "None"}
	}
	cid := lr.Target.Child("privateEndpointConnections", lr.Endpoint.Name()+"."+lr.EndpointGUID)
	c := Connection{ID: cid.String(), Name: cid.Name(), Type: resource.TypeConnection, Properties: ConnectionProperties{
		GroupIDs:                          []string{resource.PostgresGroupID},
		PrivateEndpoint:                   &SubResource{ID: lr.Endpoint.String()},
		PrivateLinkServiceConnectionState: state,
		ProvisioningState:                 "Succeeded",
	}}
	if _, err := arm.Save(ctx, tx, cid, c); err != nil {
		return res, err
	}
	res = resource.LinkResult{ConnectionID: cid, State: state, FQDN: s.Properties.FullyQualifiedDomainName}
	if s.Properties.DataPlane != nil {
		res.Node = s.Properties.DataPlane.Node
	}
	return res, nil
}

// Disconnect removes the connection of a private endpoint that is being deleted. A missing
// connection is not an error; a failure to read it is.
func (p *Provider) Disconnect(ctx context.Context, tx store.Tx, conn resource.ID) error {
	if _, err := tx.Get(ctx, conn.Key()); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read connection %s: %w", conn, err)
	}
	return arm.Delete(ctx, tx, conn)
}

// disconnect tells the endpoint side that pec is gone.
func (p *Provider) disconnect(ctx context.Context, tx store.Tx, server resource.ID, pec Connection, why string) error {
	if pec.Properties.PrivateEndpoint == nil || p.endpoints == nil {
		return nil
	}
	pe, err := resource.Parse(pec.Properties.PrivateEndpoint.ID)
	if err != nil {
		return nil
	}
	return p.endpoints.SetConnectionState(ctx, tx, pe, server, resource.ConnectionState{
		Status: resource.Disconnected, Description: why, ActionsRequired: "None"})
}

func (p *Provider) serveConnection(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	return arm.Child(ctx, p.st, req, false, p.putConnection, p.deleteConnection)
}

func (p *Provider) putConnection(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	if err := resource.ConnectionName.Check(id.Name()); err != nil {
		return nil, err
	}
	// Approving or rejecting takes the approval action on the server besides the write.
	if err := req.Authorize(ctx, resource.TypeServer+arm.ActionApproveSuffix, id.Parent().String()); err != nil {
		return nil, err
	}
	var in Connection
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	want := in.Properties.PrivateLinkServiceConnectionState
	if err := checkLength("properties.privateLinkServiceConnectionState.description", want.Description, maxStateDescription); err != nil {
		return nil, err
	}
	status, ok := resource.ParseConnectionStatus(string(want.Status))
	if !ok {
		return nil, resource.InvalidParameter("properties.privateLinkServiceConnectionState.status",
			"Invalid value '%s' for privateLinkServiceConnectionState.status. Use Approved or Rejected.", want.Status)
	}
	want.Status = status
	if want.ActionsRequired == "" {
		want.ActionsRequired = "None"
	}
	var (
		op  store.Operation
		out Connection
	)
	req.Describe(want.Description)
	err := p.st.Update(ctx, func(tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id.Parent())
		if err != nil {
			return err
		}
		cur, err := arm.Load(ctx, tx, id, &out)
		if resource.KindOf(err) == resource.NotFound {
			return resource.Errorf(resource.NotFound, "PrivateEndpointConnectionNotFound",
				"The private endpoint connection '%s' of server '%s' does not exist. Connections are created by creating a private endpoint.", id.Name(), s.Name)
		}
		if err != nil {
			return err
		}
		if err := req.CheckPreconditions(&cur); err != nil {
			return err
		}
		have := out.Properties.PrivateLinkServiceConnectionState
		if have.Status == want.Status && have.Description == want.Description {
			return nil // already so: 200 with the connection as it is
		}
		if err := resource.CheckTransition(have.Status, want.Status); err != nil {
			return err
		}
		if err := resource.RequireReady(s.Name, s.Properties.State, "change a private endpoint connection"); err != nil {
			return err
		}
		o, err := operation.Begin(ctx, tx, kindConnectionUpdate, id, s.Location, http.MethodPut,
			operation.Digest("update", string(want.Status), want.Description), arm.OpMeta(req, want.Description), connectionUpdate{State: want})
		if err != nil {
			return err
		}
		op = o
		out.Properties.ProvisioningState = "Updating"
		out.ID, out.Name = id.String(), id.Name()
		_, err = arm.Save(ctx, tx, id, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return arm.Written(0, out, op), nil
}

func (p *Provider) runConnectionUpdate(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	var in connectionUpdate
	if err := json.Unmarshal(op.Data, &in); err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	return func(ctx context.Context, tx store.Tx) error {
		var c Connection
		if _, err := arm.Load(ctx, tx, id, &c); err != nil {
			return err
		}
		if err := resource.CheckTransition(c.Properties.PrivateLinkServiceConnectionState.Status, in.State.Status); err != nil {
			return err
		}
		c.Properties.PrivateLinkServiceConnectionState = in.State
		c.Properties.ProvisioningState = "Succeeded"
		if _, err := arm.Save(ctx, tx, id, c); err != nil {
			return err
		}
		if c.Properties.PrivateEndpoint == nil || p.endpoints == nil {
			return nil
		}
		pe, err := resource.Parse(c.Properties.PrivateEndpoint.ID)
		if err != nil {
			return nil
		}
		return p.endpoints.SetConnectionState(ctx, tx, pe, id.Parent(), in.State)
	}, nil
}

func (p *Provider) deleteConnection(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var op store.Operation
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id.Parent())
		if err != nil {
			return err
		}
		var c Connection
		if _, err := arm.Load(ctx, tx, id, &c); resource.KindOf(err) == resource.NotFound {
			gone = true
			return nil
		} else if err != nil {
			return err
		}
		if err := resource.RequireReady(s.Name, s.Properties.State, "delete a private endpoint connection"); err != nil {
			return err
		}
		o, err := operation.Begin(ctx, tx, kindConnectionDelete, id, s.Location, http.MethodDelete, operation.Digest("delete"), arm.OpMeta(req, ""), nil)
		if err != nil {
			return err
		}
		op = o
		c.Properties.ProvisioningState = "Deleting"
		_, err = arm.Save(ctx, tx, id, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	return &arm.Response{Op: &op}, nil
}

func (p *Provider) runConnectionDelete(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	return func(ctx context.Context, tx store.Tx) error { return p.removeConnection(ctx, tx, id) }, nil
}

// removeConnection deletes connection id inside tx and tells its private endpoint it is
// Disconnected. A missing connection is not an error.
func (p *Provider) removeConnection(ctx context.Context, tx store.Tx, id resource.ID) error {
	var c Connection
	_, err := arm.Load(ctx, tx, id, &c)
	if resource.KindOf(err) == resource.NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if err := p.disconnect(ctx, tx, id.Parent(), c, "The private endpoint connection was removed by the owner of the private link resource."); err != nil {
		return err
	}
	return arm.Delete(ctx, tx, id)
}

// PrivateLinkResource is the one sub-resource a flexible server offers to private endpoints.
type PrivateLinkResource struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		GroupID           string   `json:"groupId"`
		RequiredMembers   []string `json:"requiredMembers"`
		RequiredZoneNames []string `json:"requiredZoneNames"`
	} `json:"properties"`
}

func (p *Provider) servePrivateLink(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req)
	}
	t := req.Target
	server := t.Parent()
	var s Server
	if err := p.view(ctx, func(tx store.Tx) error { var err error; s, _, err = loadServer(ctx, tx, server); return err }); err != nil {
		return nil, err
	}
	plr := PrivateLinkResource{Type: resource.TypePrivateLink}
	id := server.Child("privateLinkResources", resource.PostgresGroupID)
	plr.ID, plr.Name = id.String(), id.Name()
	plr.Properties.GroupID = resource.PostgresGroupID
	plr.Properties.RequiredMembers = []string{resource.PostgresGroupID}
	plr.Properties.RequiredZoneNames = []string{resource.PostgresPrivateDNSZone}
	if s.vnetIntegrated() {
		// A VNet-integrated server offers no sub-resources to private endpoints.
		if t.Collection {
			return &arm.Response{Body: arm.List{Value: []any{}}}, nil
		}
		return nil, resource.NotFoundError(t.ID)
	}
	if t.Collection {
		return &arm.Response{Body: arm.List{Value: []any{plr}}}, nil
	}
	if !slices.Contains([]string{strings.ToLower(resource.PostgresGroupID)}, strings.ToLower(t.ID.Name())) {
		return nil, resource.NotFoundError(t.ID)
	}
	return &arm.Response{Body: plr}, nil
}
