package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	adminLogin    = "pgadmin"
	adminPassword = "S3cret-pass!"
	serverName    = "bench"
	groupName     = "bench-rg"
	pgAPI         = "?api-version=2024-08-01"
	netAPI        = "?api-version=2022-01-01"
)

// env is everything the measurements run against.
type env struct {
	work       string // temporary work directory (data dir, binaries, PgBouncer files)
	keep       bool
	pglink     *pglinkProc
	api        *armClient
	bouncer    *bouncer
	serverName string
	serverPath string // ARM path of the flexible server
	subnetID   string
	pgVersion  string
	socketDir  string // the server's PostgreSQL unix socket directory
	peAddr     string // data-plane address of the approved private endpoint
	prof       *profiler
}

// setUp builds and starts pglink, creates the server and an approved private endpoint through
// the API, and starts PgBouncer. On error it returns what it started, for close.
func setUp(ctx context.Context, cfg config) (*env, error) {
	work, err := os.MkdirTemp("", "pglink-dp-")
	if err != nil {
		return nil, err
	}
	// The server's OS user (PostgreSQL, PgBouncer) must traverse it.
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	e := &env{work: work, keep: cfg.keep, serverName: serverName}
	data := filepath.Join(work, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return e, err
	}
	fmt.Printf("work dir %s; building cmd/pglink…\n", work)
	bin, source, err := buildPglink(ctx, work)
	if err != nil {
		return e, err
	}
	fmt.Printf("pglink built from %s\n", source)
	// A /20 of its own, so that a pglink left over from another run does not collide.
	block := fmt.Sprintf("127.%d.%d.0/20", 100+rand.IntN(100), 16*rand.IntN(16))
	if cfg.profile != "" {
		if cfg.profile, err = filepath.Abs(cfg.profile); err != nil {
			return e, err
		}
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return e, err
		}
	}
	p, boot, err := startPglink(ctx, bin, data, filepath.Join(work, "pglink.log"), block, cfg.profile, cfg.loops)
	if p != nil {
		e.pglink = p
	}
	if err != nil {
		return e, err
	}
	e.prof = &profiler{dir: cfg.profile, pid: p.pid()}
	if e.api, err = newARMClient(ctx, boot); err != nil {
		return e, err
	}
	if err := e.createResources(ctx); err != nil {
		return e, err
	}
	if e.socketDir, err = e.findSocket(); err != nil {
		return e, err
	}
	if e.bouncer, err = startBouncer(ctx, work, e.socketDir); err != nil {
		return e, err
	}
	return e, nil
}

// createResources creates the resource group, the server, a virtual network and an approved
// private endpoint.
func (e *env) createResources(ctx context.Context) error {
	rg := e.api.sub + "/resourceGroups/" + groupName
	if _, err := e.api.call(ctx, "PUT", rg+"?api-version=2021-04-01", map[string]any{"location": "eastus"}); err != nil {
		return err
	}
	e.serverPath = rg + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + e.serverName
	began := time.Now()
	srv, err := e.api.call(ctx, "PUT", e.serverPath+pgAPI, map[string]any{"location": "eastus", "properties": map[string]any{
		"administratorLogin": adminLogin, "administratorLoginPassword": adminPassword}})
	if err != nil {
		return fmt.Errorf("create server: %w\n%s", err, tail(e.pglink.logFile, 20))
	}
	e.pgVersion = field(srv, "properties.version")
	fmt.Printf("server created in %v\n", time.Since(began).Round(time.Millisecond))
	// Half the runs are plaintext (sslmode=disable), as half of PgBouncer's are: turn off
	// require_secure_transport, which is on by default as in Azure.
	if _, err := e.api.call(ctx, "PUT", e.serverPath+"/configurations/require_secure_transport"+pgAPI, map[string]any{
		"properties": map[string]any{"value": "off", "source": "user-override"}}); err != nil {
		return fmt.Errorf("turn require_secure_transport off: %w", err)
	}
	vnet := rg + "/providers/Microsoft.Network/virtualNetworks/bench-vnet"
	if _, err := e.api.call(ctx, "PUT", vnet+netAPI, map[string]any{"location": "eastus", "properties": map[string]any{
		"addressSpace": map[string]any{"addressPrefixes": []string{"10.0.0.0/8"}},
		"subnets":      []any{map[string]any{"name": "pe", "properties": map[string]any{"addressPrefix": "10.0.0.0/16"}}}}}); err != nil {
		return err
	}
	e.subnetID = vnet + "/subnets/pe"
	pe, err := e.createEndpoint(ctx, "bench-pe")
	if err != nil {
		return err
	}
	if _, err := e.setStatus(ctx, pe.connection, "Approved"); err != nil {
		return err
	}
	e.peAddr = pe.addr
	return nil
}

// endpoint is a private endpoint and its connection on the server.
type endpoint struct {
	name       string
	path       string // ARM path
	connection string // name of its private endpoint connection on the server
	addr       string // data-plane address
}

// createEndpoint creates a private endpoint with a manual (Pending) connection to the server.
func (e *env) createEndpoint(ctx context.Context, name string) (endpoint, error) {
	path := e.api.sub + "/resourceGroups/" + groupName + "/providers/Microsoft.Network/privateEndpoints/" + name
	body, err := e.api.call(ctx, "PUT", path+netAPI, map[string]any{"location": "eastus", "properties": map[string]any{
		"subnet": map[string]any{"id": e.subnetID},
		"manualPrivateLinkServiceConnections": []any{map[string]any{"name": "c", "properties": map[string]any{
			"privateLinkServiceId": e.serverPath, "groupIds": []string{"postgresqlServer"}, "requestMessage": "bench"}}}}})
	if err != nil {
		return endpoint{}, err
	}
	ep := endpoint{name: name, path: path, addr: field(body, "properties.dataPlane.address")}
	guid := field(body, "properties.resourceGuid")
	if ep.addr == "" || guid == "" {
		return ep, fmt.Errorf("private endpoint %s: no dataPlane.address or resourceGuid in %s", name, body)
	}
	ep.connection = name + "." + guid // as README "Behaviour and decisions" says
	return ep, nil
}

// setStatus approves or rejects a private endpoint connection and returns when the API has
// answered (the operation Succeeded).
func (e *env) setStatus(ctx context.Context, connection, status string) ([]byte, error) {
	return e.api.call(ctx, "PUT", e.serverPath+"/privateEndpointConnections/"+connection+pgAPI, map[string]any{
		"properties": map[string]any{"privateLinkServiceConnectionState": map[string]any{"status": status, "description": "bench"}}})
}

// findSocket returns the server's unix socket directory: DATA/servers/<16 hex of
// sha256(lower(server ID))>/socket, checked against the clusters' server.json files.
func (e *env) findSocket() (string, error) {
	id := e.api.sub + "/resourceGroups/" + groupName + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + e.serverName
	sum := sha256.Sum256([]byte(strings.ToLower(id)))
	servers := filepath.Join(e.pglink.dataDir, "servers")
	want := filepath.Join(servers, hex.EncodeToString(sum[:])[:16], "socket")
	if _, err := os.Stat(filepath.Join(want, ".s.PGSQL.5432")); err == nil {
		return want, nil
	}
	// Not where the layout says: look at every cluster's server.json.
	dirs, _ := filepath.Glob(filepath.Join(servers, "*", "server.json"))
	for _, f := range dirs {
		b, _ := os.ReadFile(f)
		var meta struct{ ID string }
		if json.Unmarshal(b, &meta) == nil && strings.EqualFold(meta.ID, id) {
			sock := filepath.Join(filepath.Dir(f), "socket")
			fmt.Printf("note: socket found at %s, not at %s as the layout says\n", sock, want)
			return sock, nil
		}
	}
	return "", fmt.Errorf("%w for server %s under %s (clusters: %v)", errNoSocket, id, servers, dirs)
}

// directDSN is a DSN for the server's unix socket.
func (e *env) directDSN() string {
	return fmt.Sprintf("host=%s port=5432 user=%s password='%s' dbname=postgres", e.socketDir, adminLogin, adminPassword)
}

// tcpDSN is a DSN for a TCP address (the gateway, PgBouncer), without TLS.
func tcpDSN(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=%s password='%s' dbname=postgres sslmode=disable connect_timeout=5", host, port, adminLogin, adminPassword)
}

func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// close stops PgBouncer, deletes the server through the API (which stops its PostgreSQL),
// stops pglink, stops any postmaster left under the data dir and removes the work directory.
func (e *env) close() error {
	var errs []error
	if e.bouncer != nil {
		errs = append(errs, e.bouncer.stop(5*time.Second))
	}
	if e.pglink != nil && !e.pglink.exited() && e.api != nil && e.serverPath != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if _, err := e.api.call(ctx, "DELETE", e.serverPath+pgAPI, nil); err != nil {
			errs = append(errs, fmt.Errorf("delete server: %w", err))
		}
		cancel()
	}
	if e.pglink != nil {
		errs = append(errs, e.pglink.stop(15*time.Second))
	}
	errs = append(errs, killPostmasters(e.work))
	if e.keep || errors.Join(errs...) != nil {
		fmt.Fprintf(os.Stderr, "kept %s\n", e.work)
	} else {
		os.RemoveAll(e.work)
	}
	return errors.Join(errs...)
}

// killPostmasters stops the postmaster of every cluster below work whose pid file names a
// live process (SIGQUIT: immediate shutdown), and waits for it to go.
func killPostmasters(work string) error {
	files, _ := filepath.Glob(filepath.Join(work, "data", "servers", "*", "data", "postmaster.pid"))
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
		if err != nil || pid <= 0 || !alive(pid) {
			continue
		}
		fmt.Fprintf(os.Stderr, "stopping postmaster %d left under %s\n", pid, f)
		syscall.Kill(pid, syscall.SIGQUIT)
		deadline := time.Now().Add(10 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			errs = append(errs, fmt.Errorf("postmaster %d ignored SIGQUIT and was killed", pid))
		}
	}
	return errors.Join(errs...)
}

// alive reports whether process pid exists and is not a zombie (an exited postmaster whose
// parent, init here, has not reaped it yet).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
