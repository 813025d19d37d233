package postgresql

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pglink/pglink/internal/arm"
	"github.com/pglink/pglink/internal/engine"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Operation kinds of this provider.
const (
	kindCreate = "postgresql.server.create"
	kindUpdate = "postgresql.server.update"
	kindDelete = "postgresql.server.delete"
	kindAction = "postgresql.server.action"
)

// SupportedVersions are the PostgreSQL major versions a server may be created with.
var SupportedVersions = []string{"11", "12", "13", "14", "15", "16", "17"}

// Server is a flexible server as stored and served.
type Server struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	SKU        *SKU              `json:"sku,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties ServerProperties  `json:"properties"`
}

// SKU is a server's compute tier.
type SKU struct {
	Name string `json:"name"`
	Tier string `json:"tier"`
}

// SystemData records who created and last modified a resource.
type SystemData struct {
	CreatedBy          string    `json:"createdBy,omitempty"`
	CreatedByType      string    `json:"createdByType,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	LastModifiedBy     string    `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string    `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     time.Time `json:"lastModifiedAt"`
}

// ServerProperties are a server's properties.
type ServerProperties struct {
	AdministratorLogin         string               `json:"administratorLogin,omitempty"`
	AdministratorLoginPassword string               `json:"administratorLoginPassword,omitempty"` // input only; never stored
	Version                    string               `json:"version,omitempty"`
	MinorVersion               string               `json:"minorVersion,omitempty"`
	FullyQualifiedDomainName   string               `json:"fullyQualifiedDomainName,omitempty"`
	State                      resource.ServerState `json:"state,omitempty"`
	Storage                    *Storage             `json:"storage,omitempty"`
	Backup                     *Backup              `json:"backup,omitempty"`
	Network                    *Network             `json:"network,omitempty"`
	HighAvailability           *HighAvailability    `json:"highAvailability,omitempty"`
	MaintenanceWindow          *MaintenanceWindow   `json:"maintenanceWindow,omitempty"`
	AuthConfig                 *AuthConfig          `json:"authConfig,omitempty"`
	AvailabilityZone           string               `json:"availabilityZone,omitempty"`
	ReplicationRole            string               `json:"replicationRole,omitempty"`
	ReplicaCapacity            *int                 `json:"replicaCapacity,omitempty"`
	CreateMode                 string               `json:"createMode,omitempty"` // input only
	PrivateEndpointConnections []json.RawMessage    `json:"privateEndpointConnections,omitempty"`
	DataPlane                  *resource.DataPlane  `json:"dataPlane,omitempty"` // pglink: where clients connect
}

// Storage is a server's storage settings.
type Storage struct {
	StorageSizeGB int    `json:"storageSizeGB,omitempty"`
	AutoGrow      string `json:"autoGrow,omitempty"`
	Tier          string `json:"tier,omitempty"`
	Iops          int    `json:"iops,omitempty"`
}

// Backup is a server's backup settings.
type Backup struct {
	BackupRetentionDays int        `json:"backupRetentionDays,omitempty"`
	GeoRedundantBackup  string     `json:"geoRedundantBackup,omitempty"`
	EarliestRestoreDate *time.Time `json:"earliestRestoreDate,omitempty"`
}

// Network is a server's network settings.
type Network struct {
	PublicNetworkAccess         string `json:"publicNetworkAccess,omitempty"`
	DelegatedSubnetResourceID   string `json:"delegatedSubnetResourceId,omitempty"`
	PrivateDNSZoneArmResourceID string `json:"privateDnsZoneArmResourceId,omitempty"`
}

// HighAvailability is a server's high availability settings (always disabled here).
type HighAvailability struct {
	Mode  string `json:"mode,omitempty"`
	State string `json:"state,omitempty"`
}

// MaintenanceWindow is a server's maintenance window.
type MaintenanceWindow struct {
	CustomWindow string `json:"customWindow,omitempty"`
	DayOfWeek    int    `json:"dayOfWeek"`
	StartHour    int    `json:"startHour"`
	StartMinute  int    `json:"startMinute"`
}

// AuthConfig is a server's authentication settings.
type AuthConfig struct {
	ActiveDirectoryAuth string `json:"activeDirectoryAuth,omitempty"`
	PasswordAuth        string `json:"passwordAuth,omitempty"`
	TenantID            string `json:"tenantId,omitempty"`
}

// vnetIntegrated reports whether the server was created with private access (VNet injection).
func (s *Server) vnetIntegrated() bool {
	return s.Properties.Network != nil && s.Properties.Network.DelegatedSubnetResourceID != ""
}

// publicAccess returns properties.network.publicNetworkAccess.
func (s *Server) publicAccess() string {
	if s.Properties.Network == nil {
		return ""
	}
	return s.Properties.Network.PublicNetworkAccess
}

var serverNameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
var loginRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)

// reservedLogins may not be used as administratorLogin: Azure's list, then the role names
// PostgreSQL refuses or gives another meaning (none, public and the current_user family), and
// the role pglink's engine keeps for itself. Names starting with pg_ are refused too.
var reservedLogins = []string{"azure_superuser", "azure_pg_admin", "admin", "administrator", "root", "guest", "public", "postgres", "azuresu", "sa", "dbmanager", "loginmanager", "dbo",
	"none", "current_user", "session_user", "current_role", "pglink"}

func validateServerName(name string) error {
	if len(name) < 3 || len(name) > 63 || !serverNameRE.MatchString(name) {
		return resource.InvalidParameter("serverName",
			"Invalid value given for parameter serverName. Specify a valid parameter value: 3-63 characters of lowercase letters, digits and hyphens, not starting or ending with a hyphen.")
	}
	return nil
}

func validateLogin(login string) error {
	if login == "" {
		return resource.InvalidParameter("administratorLogin",
			"The parameter administratorLogin is required to create a server with password authentication.")
	}
	if !loginRE.MatchString(login) {
		return resource.InvalidParameter("administratorLogin",
			"Invalid value given for parameter administratorLogin %q. It must be 1-63 letters, digits or underscores and start with a letter.", login)
	}
	if strings.HasPrefix(strings.ToLower(login), "pg_") || slices.Contains(reservedLogins, strings.ToLower(login)) {
		return resource.InvalidParameter("administratorLogin",
			"The administrator login '%s' is reserved and cannot be used. Names starting with 'pg_' and names such as admin, administrator, root, guest, public, none, current_user, session_user, postgres and azure_superuser are reserved; choose another login.", login)
	}
	return nil
}

// validatePassword applies Azure's rule: 8-128 characters from at least three of uppercase
// letters, lowercase letters, digits and non-alphanumeric characters. PostgreSQL cannot store a
// password with a NUL, so control characters (and text that is not UTF-8) are refused here
// rather than by the engine.
func validatePassword(pw string) error {
	if pw == "" {
		return resource.InvalidParameter("administratorLoginPassword",
			"The parameter administratorLoginPassword is required to create a server with password authentication.")
	}
	if !utf8.ValidString(pw) || strings.ContainsFunc(pw, unicode.IsControl) {
		return resource.InvalidParameter("administratorLoginPassword",
			"The password contains a character that is not allowed: control characters such as NUL, tab or newline cannot be used in a password.")
	}
	var up, low, dig, other int
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			up = 1
		case unicode.IsLower(r):
			low = 1
		case unicode.IsDigit(r):
			dig = 1
		default:
			other = 1
		}
	}
	if n := len([]rune(pw)); n < 8 || n > 128 || up+low+dig+other < 3 {
		return resource.InvalidParameter("administratorLoginPassword",
			"The password does not meet complexity requirements: use 8-128 characters from at least three of these categories: uppercase letters, lowercase letters, digits and non-alphanumeric characters.")
	}
	return nil
}

func validateSKU(s *SKU) error {
	if s == nil {
		return nil
	}
	if s.Name == "" || s.Tier == "" {
		return resource.InvalidParameter("sku", "Both sku.name and sku.tier are required when sku is given.")
	}
	for _, t := range []string{"Burstable", "GeneralPurpose", "MemoryOptimized"} {
		if strings.EqualFold(s.Tier, t) {
			s.Tier = t
			return nil
		}
	}
	return resource.InvalidParameter("sku.tier", "Invalid value given for parameter sku.tier '%s'. Use Burstable, GeneralPurpose or MemoryOptimized.", s.Tier)
}

func normPublicAccess(v string) (string, error) {
	switch {
	case v == "":
		return "", nil
	case strings.EqualFold(v, "Enabled"):
		return "Enabled", nil
	case strings.EqualFold(v, "Disabled"):
		return "Disabled", nil
	}
	return "", resource.InvalidParameter("network.publicNetworkAccess",
		"Invalid value given for parameter publicNetworkAccess '%s'. Use Enabled or Disabled.", v)
}

// publicAccessWritable reports whether api-version v lets clients set publicNetworkAccess
// (it is read-only before 2024-08-01, as in Azure).
func publicAccessWritable(v string) bool { return v >= "2023-06-01" }

func (p *Provider) serveServer(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	if t.Collection && req.Method == http.MethodPost {
		return p.serverAction(ctx, req)
	}
	if t.Collection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req)
		}
		opts := store.ListOptions{Type: resource.TypeServer, Parent: t.ID.Key()}
		if t.ID.ResourceGroup == "" {
			opts = store.ListOptions{Type: resource.TypeServer, Prefix: t.ID.Key()}
		}
		var resp *arm.Response
		err := p.view(ctx, func(tx store.Tx) error {
			var err error
			resp, err = req.PageTxBatch(ctx, tx, opts, func(rs []store.Resource) ([]any, error) { return p.renderPage(ctx, tx, rs) })
			return err
		})
		return resp, err
	}
	switch req.Method {
	case http.MethodGet:
		var body any
		err := p.view(ctx, func(tx store.Tx) error {
			r, err := arm.Load(ctx, tx, t.ID, nil)
			if err != nil {
				return err
			}
			body, err = p.render(ctx, tx, r)
			return err
		})
		if err != nil {
			return nil, err
		}
		return &arm.Response{Body: body}, nil
	case http.MethodPut, http.MethodPatch:
		return p.putServer(ctx, req)
	case http.MethodDelete:
		return p.deleteServer(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req)
}

// render returns a stored server as served: with its private endpoint connections.
func (p *Provider) render(ctx context.Context, tx store.Tx, r store.Resource) (any, error) {
	conns, err := tx.List(ctx, store.ListOptions{Parent: r.Key, Type: resource.TypeConnection})
	if err != nil {
		return nil, fmt.Errorf("list connections of %s: %w", r.ID, err)
	}
	return p.renderWith(ctx, tx, r, conns)
}

// renderPage renders a page of servers reading their connections in one query.
func (p *Provider) renderPage(ctx context.Context, tx store.Tx, rs []store.Resource) ([]any, error) {
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = r.Key
	}
	all, err := tx.List(ctx, store.ListOptions{Type: resource.TypeConnection, Parents: keys})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	byServer := map[string][]store.Resource{}
	for _, c := range all {
		byServer[c.Parent] = append(byServer[c.Parent], c)
	}
	out := make([]any, 0, len(rs))
	for _, r := range rs {
		v, err := p.renderWith(ctx, tx, r, byServer[r.Key])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (p *Provider) renderWith(ctx context.Context, tx store.Tx, r store.Resource, conns []store.Resource) (any, error) {
	var s Server
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", r.ID, err)
	}
	for _, c := range conns {
		s.Properties.PrivateEndpointConnections = append(s.Properties.PrivateEndpointConnections, c.Body)
	}
	if dp := s.Properties.DataPlane; dp != nil && p.nodeStatus != nil {
		dp.NodeStatus = p.nodeStatus(ctx, tx, dp.Node, dp.Address)
	}
	return s, nil
}

func loadServer(ctx context.Context, tx store.Tx, id resource.ID) (Server, store.Resource, error) {
	var s Server
	r, err := arm.Load(ctx, tx, id, &s)
	return s, r, err
}

// serverInput is what a create or update keeps for its operation. The password is kept as its
// SCRAM-SHA-256 verifier, never in clear, and never touches the resource document.
type serverInput struct {
	Verifier string  `json:"verifier,omitempty"`
	Password string  `json:"password,omitempty"` // in clear: read from operations of older versions only
	Restore  *Server `json:"restore,omitempty"`  // the server before an update: a failed update restores it
}

// verifier returns the SCRAM-SHA-256 verifier of the password in, or "" if it sets none.
func (in serverInput) verifier() (string, error) {
	if in.Verifier != "" || in.Password == "" {
		return in.Verifier, nil
	}
	return engine.Verifier(in.Password)
}

// newServerInput returns the operation input for a request that sets password ("": none).
func newServerInput(password string) (serverInput, error) {
	if password == "" {
		return serverInput{}, nil
	}
	v, err := engine.Verifier(password)
	if err != nil {
		return serverInput{}, resource.InvalidParameter("administratorLoginPassword", "The password is not valid: %v.", err)
	}
	return serverInput{Verifier: v}, nil
}

// goal returns the goal of a create or update (what) of a server from the request body: the
// body without the password and, when the request sets one, the password's keyed hash. The key
// is random per process and never stored, so a goal (kept with the operation, in the database)
// cannot be used to test guesses of the password. An identical retry to the same process gets
// the same goal and joins the operation; after a restart it does not, and waits like any other
// request.
func (p *Provider) goal(what string, body []byte, password string) string {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		// Decode accepted it, so this does not happen; never let the password in the goal.
		doc = nil
	}
	for k, v := range doc {
		if strings.EqualFold(k, "properties") {
			if props, ok := v.(map[string]any); ok {
				for pk := range props {
					if strings.EqualFold(pk, "administratorLoginPassword") {
						delete(props, pk)
					}
				}
			}
		}
	}
	canon, _ := json.Marshal(doc)
	var keyed string
	if password != "" {
		h := hmac.New(sha256.New, p.goalKey)
		h.Write([]byte(password))
		keyed = hex.EncodeToString(h.Sum(nil))
	}
	return operation.Digest(what, string(canon), keyed)
}

func (p *Provider) putServer(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var in Server
	if err := req.Decode(&in); err != nil {
		return nil, err
	}
	var (
		op      store.Operation
		created bool
		out     Server
	)
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, curRes, err := loadServer(ctx, tx, id)
		exists := err == nil
		if err != nil && resource.KindOf(err) != resource.NotFound {
			return err
		}
		var curp *store.Resource
		if exists {
			curp = &curRes
		}
		if err := req.CheckPreconditions(curp); err != nil {
			return err
		}
		createGoal := p.goal("create", req.Body, in.Properties.AdministratorLoginPassword)
		if a, err := tx.ActiveOperation(ctx, id.Key()); exists && err == nil && a.Kind == kindCreate && a.Goal == createGoal {
			// An identical retry of a create in flight joins it, and is answered as the create.
			op, out, created = a, cur, true
			return nil
		}
		if !exists {
			if req.Method == http.MethodPatch {
				return resource.NotFoundError(id)
			}
			if err := arm.CheckGroupWritable(ctx, tx, id); err != nil {
				return err
			}
			out, err = p.newServer(ctx, tx, req, id, in)
			if err != nil {
				return err
			}
			created = true
			_, err = arm.Save(ctx, tx, id, out)
			if err != nil {
				return err
			}
			input, err := newServerInput(in.Properties.AdministratorLoginPassword)
			if err != nil {
				return err
			}
			o, err := operation.BeginOn(ctx, tx, nodeOf(out), kindCreate, id, out.Location, req.Method, createGoal, arm.OpMeta(req, ""), input)
			op = o
			return err
		}
		out, err = p.updateServer(req, cur, in)
		if err != nil {
			return err
		}
		if reflectEqual(out, cur) && in.Properties.AdministratorLoginPassword == "" {
			return nil // nothing to change: 200 with the resource as it is
		}
		goal := p.goal("update", req.Body, in.Properties.AdministratorLoginPassword)
		if a, err := tx.ActiveOperation(ctx, id.Key()); err == nil && a.Goal == goal {
			op = a // an identical retry joins the operation in flight
			return nil
		}
		if err := resource.RequireReady(id.Name(), cur.Properties.State, "update the server"); err != nil {
			return err
		}
		input, err := newServerInput(in.Properties.AdministratorLoginPassword)
		if err != nil {
			return err
		}
		prev := cur
		prev.Properties.PrivateEndpointConnections = nil
		input.Restore = &prev
		o, err := operation.BeginOn(ctx, tx, nodeOf(cur), kindUpdate, id, out.Location, req.Method, goal, arm.OpMeta(req, ""), input)
		if err != nil {
			return err
		}
		op = o
		out.Properties.State = resource.ServerUpdating
		_, err = arm.Save(ctx, tx, id, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	status := 0
	if created {
		status = http.StatusCreated
	}
	return arm.Written(status, out, op), nil
}

func reflectEqual(a, b Server) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// newServer validates a create request and returns the server record, in state Provisioning.
func (p *Provider) newServer(ctx context.Context, tx store.Tx, req *arm.Request, id resource.ID, in Server) (Server, error) {
	if err := validateServerName(id.Name()); err != nil {
		return Server{}, err
	}
	if strings.TrimSpace(in.Location) == "" {
		return Server{}, resource.Errorf(resource.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	pr := in.Properties
	switch strings.ToLower(pr.CreateMode) {
	case "", "default", "create":
	default:
		return Server{}, resource.InvalidParameter("createMode",
			"createMode '%s' is not supported by pglink; create the server with createMode Default.", pr.CreateMode)
	}
	if err := validateLogin(pr.AdministratorLogin); err != nil {
		return Server{}, err
	}
	if err := validatePassword(pr.AdministratorLoginPassword); err != nil {
		return Server{}, err
	}
	installed := p.eng.Versions()
	if pr.Version == "" && len(installed) > 0 {
		pr.Version = installed[len(installed)-1]
	}
	if !slices.Contains(SupportedVersions, pr.Version) {
		return Server{}, resource.InvalidParameter("version",
			"Invalid value given for parameter version '%s'. Supported versions: %s.", pr.Version, strings.Join(SupportedVersions, ", "))
	}
	if !slices.Contains(installed, pr.Version) {
		return Server{}, resource.InvalidParameter("version",
			"PostgreSQL version %s is not installed on this host. Installed versions: %s.", pr.Version, strings.Join(installed, ", "))
	}
	if err := validateSKU(in.SKU); err != nil {
		return Server{}, err
	}
	if err := p.checkNameFree(ctx, tx, id); err != nil {
		return Server{}, err
	}
	s := Server{ID: id.String(), Name: id.Name(), Type: resource.TypeServer, Location: normLocation(in.Location), Tags: in.Tags, SKU: in.SKU}
	if p.addrs != nil {
		addr, node, err := p.addrs.Place(ctx, tx)
		if err != nil {
			return Server{}, err
		}
		s.Properties.DataPlane = &resource.DataPlane{Address: addr, Node: node}
	}
	if s.SKU == nil {
		s.SKU = &SKU{Name: "Standard_D2s_v3", Tier: "GeneralPurpose"}
	}
	net := Network{PublicNetworkAccess: "Enabled"}
	if pr.Network != nil {
		net.DelegatedSubnetResourceID = pr.Network.DelegatedSubnetResourceID
		net.PrivateDNSZoneArmResourceID = pr.Network.PrivateDNSZoneArmResourceID
		v, err := normPublicAccess(pr.Network.PublicNetworkAccess)
		if err != nil {
			return Server{}, err
		}
		if v != "" && publicAccessWritable(req.APIVersion) {
			net.PublicNetworkAccess = v
		}
	}
	if net.DelegatedSubnetResourceID != "" {
		if _, err := resource.Parse(net.DelegatedSubnetResourceID); err != nil {
			return Server{}, resource.InvalidParameter("network.delegatedSubnetResourceId", "Invalid subnet resource id '%s'.", net.DelegatedSubnetResourceID)
		}
		net.PublicNetworkAccess = "Disabled"
	}
	storage := Storage{StorageSizeGB: 128, AutoGrow: "Disabled", Tier: "P10", Iops: 500}
	if pr.Storage != nil && pr.Storage.StorageSizeGB > 0 {
		storage.StorageSizeGB = pr.Storage.StorageSizeGB
	}
	backup := Backup{BackupRetentionDays: 7, GeoRedundantBackup: "Disabled"}
	if pr.Backup != nil && pr.Backup.BackupRetentionDays > 0 {
		backup.BackupRetentionDays = pr.Backup.BackupRetentionDays
	}
	zero := 5
	now := time.Now().UTC()
	s.SystemData = &SystemData{CreatedBy: callerName(req), CreatedByType: callerType(req), CreatedAt: now,
		LastModifiedBy: callerName(req), LastModifiedByType: callerType(req), LastModifiedAt: now}
	s.Properties = ServerProperties{
		DataPlane:                s.Properties.DataPlane,
		AdministratorLogin:       pr.AdministratorLogin,
		Version:                  pr.Version,
		FullyQualifiedDomainName: strings.ToLower(id.Name()) + "." + p.DNSSuffix(),
		State:                    resource.ServerProvisioning,
		Storage:                  &storage,
		Backup:                   &backup,
		Network:                  &net,
		HighAvailability:         &HighAvailability{Mode: "Disabled", State: "NotEnabled"},
		MaintenanceWindow:        &MaintenanceWindow{CustomWindow: "Disabled"},
		AuthConfig:               &AuthConfig{ActiveDirectoryAuth: "Disabled", PasswordAuth: "Enabled"},
		AvailabilityZone:         "1",
		ReplicationRole:          "Primary",
		ReplicaCapacity:          &zero,
	}
	return s, nil
}

// checkNameFree enforces that server names are unique across the installation, as their DNS
// names are, and claims id's name for it. Each server claims its name with a document at
// nameClaim(name) whose body is the server's key, written in the create's transaction, so two
// creates of one name conflict in the store; a claim whose server is gone (a delete that did
// not remove it) is stale and taken over. Servers created before claims existed are claimed
// once, by the first create that finds the setting namesClaimed missing.
func (p *Provider) checkNameFree(ctx context.Context, tx store.Tx, id resource.ID) error {
	if _, err := tx.Setting(ctx, namesClaimed); errors.Is(err, store.ErrNotFound) {
		if err := claimAllNames(ctx, tx); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("read setting %s: %w", namesClaimed, err)
	}
	key := nameClaim(id.Name())
	c, err := tx.Get(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read server name claim: %w", err)
	case string(c.Body) != id.Key():
		if _, err := tx.Get(ctx, string(c.Body)); err == nil {
			return resource.Errorf(resource.Conflict, "ServerNameAlreadyExists",
				"The server name '%s' is already in use. Server names must be unique; choose another name.", id.Name())
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read the server claiming name %s: %w", id.Name(), err)
		}
	}
	return putClaim(ctx, tx, id)
}

// namesClaimed is the setting that says every server's name is claimed.
const namesClaimed = "postgresql/server-names-claimed"

// nameClaim is the store key of the claim of server name: outside every subscription, so no
// list of ARM resources shows it.
func nameClaim(name string) string {
	return "/providers/microsoft.dbforpostgresql/servernames/" + strings.ToLower(name)
}

func putClaim(ctx context.Context, tx store.Tx, id resource.ID) error {
	key := nameClaim(id.Name())
	_, err := tx.Put(ctx, store.Resource{Key: key, ID: key, Type: "Microsoft.DBforPostgreSQL/serverNames", Body: []byte(id.Key())}, "")
	if err != nil {
		return fmt.Errorf("claim server name %s: %w", id.Name(), err)
	}
	return nil
}

// dropClaim removes server id's claim on its name, if it holds it.
func dropClaim(ctx context.Context, tx store.Tx, id resource.ID) error {
	c, err := tx.Get(ctx, nameClaim(id.Name()))
	if errors.Is(err, store.ErrNotFound) || err == nil && string(c.Body) != id.Key() {
		return nil
	}
	if err == nil {
		err = tx.Delete(ctx, c.Key)
	}
	if err != nil {
		return fmt.Errorf("release server name %s: %w", id.Name(), err)
	}
	return nil
}

// claimAllNames claims the names of every server in the store, once.
func claimAllNames(ctx context.Context, tx store.Tx) error {
	all, err := tx.List(ctx, store.ListOptions{Type: resource.TypeServer})
	if err != nil {
		return fmt.Errorf("list servers: %w", err)
	}
	for _, r := range all {
		if id, err := resource.Parse(r.ID); err == nil {
			if err := putClaim(ctx, tx, id); err != nil {
				return err
			}
		}
	}
	return tx.PutSetting(ctx, namesClaimed, []byte("1"))
}

// updateServer applies a PUT or PATCH to an existing server and returns the result.
func (p *Provider) updateServer(req *arm.Request, cur, in Server) (Server, error) {
	out := cur
	out.ID, out.Name = req.Target.ID.String(), req.Target.ID.Name()
	pr := in.Properties
	if in.Location != "" && normLocation(in.Location) != cur.Location {
		return out, resource.Errorf(resource.Invalid, "LocationNotAvailableForResourceUpdate",
			"The location of server '%s' cannot be changed from '%s' to '%s'.", cur.Name, cur.Location, in.Location)
	}
	if pr.AdministratorLogin != "" && pr.AdministratorLogin != cur.Properties.AdministratorLogin {
		return out, resource.InvalidParameter("administratorLogin", "The administratorLogin of an existing server cannot be changed.")
	}
	if pr.Version != "" && pr.Version != cur.Properties.Version {
		return out, resource.InvalidParameter("version",
			"Changing the major version of server '%s' from %s to %s is not supported.", cur.Name, cur.Properties.Version, pr.Version)
	}
	if pr.AdministratorLoginPassword != "" {
		if err := validatePassword(pr.AdministratorLoginPassword); err != nil {
			return out, err
		}
	}
	if in.Tags != nil || req.Method == http.MethodPut {
		out.Tags = in.Tags
	}
	if in.SKU != nil {
		if err := validateSKU(in.SKU); err != nil {
			return out, err
		}
		out.SKU = in.SKU
	}
	if pr.Storage != nil && pr.Storage.StorageSizeGB != 0 {
		if pr.Storage.StorageSizeGB < cur.Properties.Storage.StorageSizeGB {
			return out, resource.InvalidParameter("storage.storageSizeGB", "Storage size cannot be reduced (from %d GB to %d GB).",
				cur.Properties.Storage.StorageSizeGB, pr.Storage.StorageSizeGB)
		}
		st := *cur.Properties.Storage
		st.StorageSizeGB = pr.Storage.StorageSizeGB
		out.Properties.Storage = &st
	}
	if pr.Network != nil && publicAccessWritable(req.APIVersion) {
		v, err := normPublicAccess(pr.Network.PublicNetworkAccess)
		if err != nil {
			return out, err
		}
		if v != "" && v != cur.publicAccess() {
			if cur.vnetIntegrated() {
				return out, resource.InvalidParameter("network.publicNetworkAccess",
					"Public network access cannot be changed on a server with private access (VNet integration).")
			}
			n := *cur.Properties.Network
			n.PublicNetworkAccess = v
			out.Properties.Network = &n
		}
	}
	out.Properties.PrivateEndpointConnections = nil
	return out, nil
}

func callerName(req *arm.Request) string {
	if req.Caller.Kind == "User" {
		return req.Caller.Name
	}
	return req.Caller.AppID
}

func callerType(req *arm.Request) string {
	if req.Caller.Kind == "User" {
		return "User"
	}
	return "Application"
}

func normLocation(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

func (p *Provider) deleteServer(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	var op store.Operation
	err := p.st.Update(ctx, func(tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id)
		if err != nil {
			return err
		}
		o, err := operation.BeginOn(ctx, tx, nodeOf(s), kindDelete, id, s.Location, http.MethodDelete, operation.Digest("delete"), arm.OpMeta(req, ""), nil)
		if err != nil {
			return err
		}
		op = o
		s.Properties.State = resource.ServerDropping
		_, err = arm.Save(ctx, tx, id, s)
		return err
	})
	if resource.KindOf(err) == resource.NotFound {
		return &arm.Response{Status: http.StatusNoContent}, nil
	}
	if err != nil {
		return nil, err
	}
	return &arm.Response{Op: &op}, nil
}

// serverAction serves POST start, stop and restart.
func (p *Provider) serverAction(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	id := req.Target.ID
	action := strings.ToLower(req.Target.Last)
	var from, during resource.ServerState
	switch action {
	case "start":
		from, during = resource.ServerStopped, resource.ServerStarting
	case "stop":
		from, during = resource.ServerReady, resource.ServerStopping
	case "restart":
		from, during = resource.ServerReady, resource.ServerRestarting
	default:
		return nil, resource.Errorf(resource.NotFound, "InvalidRequestUri", "The action '%s' is not supported on flexible servers.", req.Target.Last)
	}
	var op store.Operation
	err := p.st.Update(ctx, func(tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id)
		if err != nil {
			return err
		}
		if s.Properties.State != from {
			if active, err := tx.ActiveOperation(ctx, id.Key()); err == nil && active.Kind == kindAction && active.Goal == operation.Digest(action) {
				op = active // an identical retry joins the running action
				return nil
			}
			verb := map[string]string{"start": "Start", "stop": "Stop", "restart": "Restart"}[action]
			return resource.Errorf(resource.Conflict, "ServerIsNotReady",
				"%s Server can only be performed on servers in state %s. Server Name = %s, Current Server State = %s",
				verb, from, id.Name(), s.Properties.State)
		}
		o, err := operation.BeginOn(ctx, tx, nodeOf(s), kindAction, id, s.Location, http.MethodPost, operation.Digest(action), arm.OpMeta(req, ""), action)
		if err != nil {
			return err
		}
		op = o
		s.Properties.State = during
		_, err = arm.Save(ctx, tx, id, s)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &arm.Response{Op: &op}, nil
}

// setState returns a commit that sets the server's state (and applies mutate, if any).
func setState(id resource.ID, state resource.ServerState, mutate func(*Server)) operation.Commit {
	return func(ctx context.Context, tx store.Tx) error {
		s, _, err := loadServer(ctx, tx, id)
		if err != nil {
			return err
		}
		s.Properties.State = state
		if mutate != nil {
			mutate(&s)
		}
		_, err = arm.Save(ctx, tx, id, s)
		return err
	}
}

func (p *Provider) runCreate(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	var in serverInput
	if err := json.Unmarshal(op.Data, &in); err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	var s Server
	if err := p.view(ctx, func(tx store.Tx) error {
		// The group may have begun its delete since the request: then make no cluster (the
		// failure removes the record).
		if err := arm.CheckGroupWritable(ctx, tx, id); err != nil {
			return err
		}
		var err error
		s, _, err = loadServer(ctx, tx, id)
		return err
	}); err != nil {
		return nil, err
	}
	verifier, err := in.verifier()
	if err != nil {
		return nil, fmt.Errorf("administrator password: %w", err)
	}
	spec := engine.Spec{ID: id, Version: s.Properties.Version, AdminLogin: s.Properties.AdministratorLogin, AdminVerifier: verifier}
	if err := p.eng.Create(ctx, spec); err != nil {
		return nil, err // the kind's failure removes the cluster and the record
	}
	minor := p.eng.MinorVersion(s.Properties.Version)
	return setState(id, resource.ServerReady, func(s *Server) { s.Properties.MinorVersion = minor }), nil
}

func (p *Provider) runUpdate(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	var in serverInput
	if err := json.Unmarshal(op.Data, &in); err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	verifier, err := in.verifier()
	if err != nil {
		return nil, fmt.Errorf("administrator password: %w", err)
	}
	if verifier != "" {
		var s Server
		if err := p.view(ctx, func(tx store.Tx) error {
			var err error
			s, _, err = loadServer(ctx, tx, id)
			return err
		}); err != nil {
			return nil, err
		}
		if err := p.eng.SetPassword(ctx, id, s.Properties.AdministratorLogin, verifier); err != nil {
			return nil, err // the kind's failure restores the server as it was
		}
	}
	return setState(id, resource.ServerReady, nil), nil
}

func (p *Provider) runDelete(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	if err := p.eng.Delete(ctx, id); err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx store.Tx) error { return p.remove(ctx, tx, id) }, nil
}

// remove deletes server id and everything below it inside tx, as a server delete does: every
// private endpoint that pointed at it is now Disconnected. A missing server is not an error.
func (p *Provider) remove(ctx context.Context, tx store.Tx, id resource.ID) error {
	conns, err := tx.List(ctx, store.ListOptions{Parent: id.Key(), Type: resource.TypeConnection})
	if err != nil {
		return fmt.Errorf("list connections of %s: %w", id, err)
	}
	for _, c := range conns {
		var pec Connection
		if err := json.Unmarshal(c.Body, &pec); err != nil {
			return fmt.Errorf("decode %s: %w", c.ID, err)
		}
		if err := p.disconnect(ctx, tx, id, pec, "The private link resource was deleted."); err != nil {
			return err
		}
	}
	if err := dropClaim(ctx, tx, id); err != nil {
		return err
	}
	return arm.Delete(ctx, tx, id)
}

func (p *Provider) runAction(ctx context.Context, op operation.Op) (operation.Commit, error) {
	id := resource.MustParse(op.ResourceID)
	var action string
	if err := json.Unmarshal(op.Data, &action); err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	var err error
	final := resource.ServerReady
	switch action {
	case "start":
		err = p.eng.Start(ctx, id)
	case "stop":
		err, final = p.eng.Stop(ctx, id), resource.ServerStopped
	case "restart":
		err = p.eng.Restart(ctx, id)
	default:
		err = errors.New("unknown action " + action)
	}
	if err != nil {
		return nil, err
	}
	return setState(id, final, nil), nil
}

// nodeOf returns the data-plane node that holds s's PostgreSQL cluster, "" for any (the
// records engine, or a document written before nodes existed, on a single node).
func nodeOf(s Server) string {
	if s.Properties.DataPlane == nil {
		return ""
	}
	return s.Properties.DataPlane.Node
}
