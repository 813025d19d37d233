// Package postgresql is the Microsoft.DBforPostgreSQL provider: flexible servers, their
// firewall rules, private endpoint connections, private link resources and server parameters
// (configurations), and the start/stop/restart actions. It owns validation, defaults and the
// state machine of those types; the engine runs the servers.
package postgresql

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/engine"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Namespace is the provider namespace.
const Namespace = "Microsoft.DBforPostgreSQL"

// APIVersions are the api-versions served, oldest first: az 2.45 sends 2022-12-01, the Go SDK
// v4 2024-08-01, v5 2025-08-01.
var APIVersions = []string{
	"2022-12-01", "2023-03-01-preview", "2023-06-01-preview", "2023-12-01-preview", "2024-03-01-preview",
	"2024-08-01", "2024-11-01-preview", "2025-01-01-preview", "2025-06-01-preview", "2025-08-01",
}

// Engine runs the PostgreSQL server behind each flexible server. Every method is idempotent: a
// resumed operation may call it again.
type Engine interface {
	Create(ctx context.Context, s engine.Spec) error
	Start(ctx context.Context, id resource.ID) error
	Stop(ctx context.Context, id resource.ID) error
	Restart(ctx context.Context, id resource.ID) error
	Delete(ctx context.Context, id resource.ID) error
	// SetPassword sets the password of role login to the one whose SCRAM-SHA-256 verifier is
	// verifier (engine.Verifier).
	SetPassword(ctx context.Context, id resource.ID, login, verifier string) error
	MinorVersion(major string) string
	// Versions lists the installed PostgreSQL major versions, oldest first.
	Versions() []string
}

// Addresses places servers on data-plane nodes and hands out their addresses ("host:port")
// inside a transaction.
type Addresses interface {
	// Place picks the data-plane node of a new server and a free address on it.
	Place(ctx context.Context, tx store.Tx) (addr, node string, err error)
}

// Endpoints is the private endpoint side of a private link: the network provider. The
// provider tells it when a connection's state changes so that the endpoint mirrors it.
type Endpoints interface {
	// SetConnectionState records state on the private endpoint pe for its connection to
	// target, inside tx. A missing endpoint is not an error.
	SetConnectionState(ctx context.Context, tx store.Tx, pe resource.ID, target resource.ID, state resource.ConnectionState) error
}

// Provider serves Microsoft.DBforPostgreSQL.
type Provider struct {
	st        store.Store
	eng       Engine
	addrs     Addresses // nil: servers get no data-plane address
	endpoints Endpoints
	log       *slog.Logger
	goalKey   []byte // keys the password's hash in operation goals; random, never stored
	limits    Limits // quotas; zero fields mean the defaults
	dnsSuffix string // servers' names are <server>.<dnsSuffix>; "" means DefaultDNSSuffix
	// nodeStatus, if set, tells the status of the data-plane node of a server (its node and
	// address) as of now: resource.NodeAvailable or resource.NodeUnreachable.
	nodeStatus func(ctx context.Context, tx store.Tx, node, address string) string
	node       string   // this process's data-plane node, "" for none
	sessions   Sessions // nil: no data plane, no sessions
}

// DefaultDNSSuffix is the suffix of servers' names unless SetDNSSuffix says otherwise, Azure's.
const DefaultDNSSuffix = "postgres.database.azure.com"

// SetDNSSuffix sets the suffix of new servers' names (properties.fullyQualifiedDomainName is
// "<server>.<suffix>"); call it before serving.
func (p *Provider) SetDNSSuffix(suffix string) {
	p.dnsSuffix = strings.Trim(strings.ToLower(suffix), ".")
}

// DNSSuffix returns the suffix of servers' names.
func (p *Provider) DNSSuffix() string {
	if p.dnsSuffix == "" {
		return DefaultDNSSuffix
	}
	return p.dnsSuffix
}

// New returns the provider. addrs may be nil when there is no data plane.
func New(st store.Store, eng Engine, endpoints Endpoints, addrs Addresses, log *slog.Logger) *Provider {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return &Provider{st: st, eng: eng, endpoints: endpoints, addrs: addrs, log: log.With("component", "postgresql"), goalKey: key}
}

// Types returns the resource types the provider serves.
func (p *Provider) Types() []arm.Type {
	return []arm.Type{
		{Name: resource.TypeServer, APIVersions: APIVersions, Handler: p.serveServer},
		{Name: resource.TypeFirewallRule, APIVersions: APIVersions, Handler: p.serveFirewallRule},
		{Name: resource.TypeConnection, APIVersions: APIVersions, Handler: p.serveConnection},
		{Name: resource.TypePrivateLink, APIVersions: APIVersions, Handler: p.servePrivateLink},
		{Name: resource.TypeConfiguration, APIVersions: APIVersions, Handler: p.serveConfiguration},
		{Name: TypeSession, APIVersions: APIVersions, Handler: p.serveSessions},
		{Name: Namespace + "/locations/capabilities", APIVersions: APIVersions, Handler: p.serveCapabilities},
	}
}

// Register adds the provider's operations to w.
func (p *Provider) Register(w *operation.Workers) {
	w.Register(kindCreate, p.runCreate)
	w.Register(kindUpdate, p.runUpdate)
	w.Register(kindDelete, p.runDelete)
	w.Register(kindAction, p.runAction)
	w.Register(kindFirewallPut, p.runFirewallPut)
	w.Register(kindFirewallDelete, p.runFirewallDelete)
	w.Register(kindConnectionUpdate, p.runConnectionUpdate)
	w.Register(kindConnectionDelete, p.runConnectionDelete)
	w.Register(kindConfigurationPut, p.runConfigurationPut)
	p.registerFailures(w)
}

// Cleanup removes the engine's server for a flexible server a resource group delete removes.
// It is idempotent.
//
// A server on another data-plane node is left to that node, which removes the cluster of a
// server it sees deleted on the change feed (dataplane.Reconciler).
func (p *Provider) Cleanup(ctx context.Context, r store.Resource) error {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return err
	}
	var s Server
	if json.Unmarshal(r.Body, &s) == nil && p.node != "" && nodeOf(s) != "" && nodeOf(s) != p.node {
		return nil
	}
	return p.eng.Delete(ctx, id)
}

// RemoveServer deletes the flexible server r inside tx as a server delete does (with its
// firewall rules and connections; the private endpoints that pointed at it, in any group, are
// Disconnected), for a resource group delete. A missing server is not an error.
func (p *Provider) RemoveServer(ctx context.Context, tx store.Tx, r store.Resource) error {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return fmt.Errorf("parse %s: %w", r.ID, err)
	}
	return p.remove(ctx, tx, id)
}

// RemoveConnection deletes the private endpoint connection r inside tx as a connection delete
// does (its private endpoint, in any group, is Disconnected), for a resource group delete. A
// missing connection is not an error.
func (p *Provider) RemoveConnection(ctx context.Context, tx store.Tx, r store.Resource) error {
	id, err := resource.Parse(r.ID)
	if err != nil {
		return fmt.Errorf("parse %s: %w", r.ID, err)
	}
	return p.removeConnection(ctx, tx, id)
}

// view runs fn in a read-only transaction.
func (p *Provider) view(ctx context.Context, fn func(tx store.Tx) error) error {
	return p.st.View(ctx, fn)
}

// serveCapabilities answers the location capabilities query az makes before updates.
func (p *Provider) serveCapabilities(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req)
	}
	versions := []map[string]any{}
	for _, v := range p.eng.Versions() {
		versions = append(versions, map[string]any{"name": v, "status": "Available"})
	}
	return &arm.Response{Body: map[string]any{"value": []any{map[string]any{
		"name":                     "FlexibleServerCapabilities",
		"zoneRedundantHaSupported": false,
		"geoBackupSupported":       false,
		"supportedServerEditions": []any{map[string]any{"name": "GeneralPurpose", "defaultSkuName": "Standard_D2s_v3", "status": "Available", "supportedServerSkus": []any{map[string]any{"name": "Standard_D2s_v3", "vCores": 2, "supportedIops": 3200, "supportedMemoryPerVcoreMb": 4096, "supportedZones": []string{"1"}, "supportedHaMode": []string{}}}, "supportedStorageEditions": []any{map[string]any{"name": "ManagedDisk", "defaultStorageSizeMb": 131072, "status": "Available", "supportedStorageMb": []any{map[string]any{"supportedIops": 500, "storageSizeMb": 131072, "status": "Available"}}}}},
			map[string]any{"name": "Burstable", "defaultSkuName": "Standard_B1ms", "status": "Available", "supportedServerSkus": []any{map[string]any{"name": "Standard_B1ms", "vCores": 1, "supportedIops": 640, "supportedMemoryPerVcoreMb": 2048, "supportedZones": []string{"1"}, "supportedHaMode": []string{}}}, "supportedStorageEditions": []any{map[string]any{"name": "ManagedDisk", "defaultStorageSizeMb": 32768, "status": "Available", "supportedStorageMb": []any{map[string]any{"supportedIops": 120, "storageSizeMb": 32768, "status": "Available"}}}}}},
		"supportedServerVersions": versions,
		"status":                  "Available",
	}}}}, nil
}

func jsonDecode(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("decode stored document: %w", err)
	}
	return nil
}

// SetNodeStatus sets how servers' data-plane node status (properties.dataPlane.nodeStatus) is
// found when they are read.
func (p *Provider) SetNodeStatus(f func(ctx context.Context, tx store.Tx, node, address string) string) {
	p.nodeStatus = f
}

// SetNode names this process's data-plane node: a group delete cleans up the clusters of
// servers on it only.
func (p *Provider) SetNode(name string) { p.node = name }
