package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

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

// TestDemoServeCommand runs the README's first command, `pglink serve --demo --data-dir DIR`
// (the built binary, on the default engine, with a free address): it prints where to sign in
// and each demo user's password, the passwords bootstrap.json holds, and the server gets Ready.
func TestDemoServeCommand(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	first := regexp.MustCompile("(?s)```sh\n([^\n]*)").FindSubmatch(readme)
	if first == nil || !strings.Contains(string(first[1]), "pglink serve --demo") || !strings.Contains(string(first[1]), "dba@pglink.local") {
		t.Fatalf("the README's first command is %q; want pglink serve --demo, saying where to sign in as dba@pglink.local", first)
	}
	requirePGTool(t, "initdb")
	bin := buildPglink(t)
	dir, addr := traversableDir(t), freeAddr(t)
	out := &syncBuffer{}
	startServe(t, bin, dir, addr, io.MultiWriter(t.Output(), out), "--demo",
		"--endpoint-network", fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250)))
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(string(out.Bytes()), "pglink demo: open https://"+addr+"/ in a browser") {
		if time.Now().After(deadline) {
			t.Fatalf("pglink serve --demo did not say where to sign in; it wrote:\n%s", out.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	boot, err := server.ReadBootstrap(dir)
	if err != nil {
		t.Fatal(err)
	}
	if boot.Demo == nil || len(boot.Demo.Users) != 2 {
		t.Fatalf("bootstrap.json demo = %+v; want two users", boot.Demo)
	}
	printed := string(out.Bytes())
	roles := map[string]bool{}
	for _, u := range boot.Demo.Users {
		line := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(u.Username) + `\s+password\s+` + regexp.QuoteMeta(u.Password) + `\s`)
		if u.Password == "" || !line.MatchString(printed) {
			t.Errorf("pglink serve --demo did not print %s with its password from bootstrap.json; it wrote:\n%s", u.Username, printed)
		}
		roles[u.Username] = true
	}
	if !roles["dba@pglink.local"] || !roles["netadmin@pglink.local"] {
		t.Errorf("demo users = %v; want dba@pglink.local and netadmin@pglink.local", roles)
	}
	in := &instance{t: t, dir: dir, boot: boot}
	c := newClients(t, in)
	for {
		srv, err := c.servers.Get(ctxT(t), "db-rg", "orders-db", nil)
		if err == nil && *srv.Properties.State == pg.ServerStateReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo server is not Ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := *c.onlyConnection(t, "db-rg", "orders-db").Properties.PrivateLinkServiceConnectionState.Status; got != pg.PrivateEndpointServiceConnectionStatusPending {
		t.Errorf("demo connection = %s; want Pending", got)
	}
}
