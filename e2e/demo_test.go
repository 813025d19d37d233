package e2e

import (
	"testing"

	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"

	"github.com/pglink/pglink/internal/server"
)

// TestDemo: --demo seeds an empty data dir once: two users whose passwords are in
// bootstrap.json, a Ready server, and a Pending connection from the network administrator's
// manual private endpoint. A restart seeds nothing more and keeps the record.
func TestDemo(t *testing.T) {
	in := startDemo(t)
	d := in.boot.Demo
	if d == nil || len(d.Users) != 2 {
		t.Fatalf("bootstrap demo = %+v; want two users", d)
	}
	onDisk, err := server.ReadBootstrap(in.dir)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Demo == nil || onDisk.Demo.Users[1].Password != d.Users[1].Password {
		t.Fatalf("bootstrap.json demo = %+v; want %+v", onDisk.Demo, d)
	}
	c := newClients(t, in)
	srv, err := c.servers.Get(ctxT(t), "db-rg", "orders-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *srv.Properties.State; got != pg.ServerStateReady {
		t.Errorf("demo server state = %s; want Ready", got)
	}
	pec := c.onlyConnection(t, "db-rg", "orders-db")
	if got := *pec.Properties.PrivateLinkServiceConnectionState.Status; got != pg.PrivateEndpointServiceConnectionStatusPending {
		t.Errorf("demo connection = %s; want Pending", got)
	}
	// Each user signs in with the password given (the password grant, as az login -u does).
	for _, u := range d.Users {
		cli := newCLI(t)
		cli.ok(nil, "login", "-u", u.Username, "-p", u.Password, "--endpoint", in.boot.ARMEndpoint, "--ca-file", in.boot.CACertFile)
	}

	in.restart()
	if in.boot.Demo == nil || in.boot.Demo.Users[0].Password != d.Users[0].Password {
		t.Errorf("after a restart, bootstrap demo = %+v; want the first seed's", in.boot.Demo)
	}
	c.onlyConnection(t, "db-rg", "orders-db") // still one: nothing seeded twice
}

// TestDemoNotOnUsedDataDir: --demo on a data dir that already has state seeds nothing.
func TestDemoNotOnUsedDataDir(t *testing.T) {
	in := start(t, nil)
	in.cfg.Demo = true
	in.restart()
	if in.boot.Demo != nil {
		t.Errorf("bootstrap demo = %+v; want none on a used data dir", in.boot.Demo)
	}
}
