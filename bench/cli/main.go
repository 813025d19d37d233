// Command cli measures the wall-clock time of pglink CLI commands run as processes, as a user
// feels it: the seed's approve command (a different Pending connection each run), show and
// list, and a command that sends no request (the process start and profile read alone).
//
//	go run ./bench/cli [-runs 20] [-engine records|local]
//
// It builds cmd/pglink, starts pglink in-process on a temporary data dir (by default with the
// records engine, the API without PostgreSQL; -engine local runs a real PostgreSQL and the
// gateway, so an approval also opens the private endpoint), logs the CLI in with bootstrap.json and prints the median, p90 and
// maximum of each command over -runs runs, against the goals (approve < 0.3 s, show and list
// < 0.15 s).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/server"
)

func main() {
	runs := flag.Int("runs", 20, "runs of each command")
	engine := flag.String("engine", "records", "records: the API alone; local: real PostgreSQL and the gateway")
	flag.Parse()
	if err := run(*runs, *engine); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// cli runs the built binary with its own config directory.
type cli struct{ bin, config string }

func (c cli) run(args ...string) (string, time.Duration, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "PGLINK_CONFIG_DIR="+c.config)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return "", took, fmt.Errorf("pglink %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), took, nil
}

func run(runs int, engine string) error {
	dir, err := os.MkdirTemp("", "pglink-bench-cli-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// With -engine local as root, the clusters' OS users must traverse the data dir's parent
	// for the clusters to live in the data dir (else pglink keeps them under /var/lib/pglink).
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(dir, "pglink")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pglink").CombinedOutput(); err != nil {
		return fmt.Errorf("build pglink (run from the top of the checkout): %v\n%s", err, out)
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	cfg.Engine = engine
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		return fmt.Errorf("start pglink: %w", err)
	}
	defer srv.Close()
	c := cli{bin: bin, config: filepath.Join(dir, "config")}

	// Set up: a server and runs private endpoints, each with a Pending connection.
	setup := [][]string{
		{"login", "--bootstrap", filepath.Join(cfg.DataDir, "bootstrap.json"), "-o", "none"},
		{"group", "create", "-n", "db-rg", "-l", "eastus", "-o", "none"},
		{"postgres", "flexible-server", "create", "-g", "db-rg", "-n", "orders-db", "--admin-user", "pgadmin", "--admin-password", "S3cret-pass!", "-o", "none"},
		{"network", "vnet", "create", "-g", "db-rg", "-n", "app-vnet", "--subnet-name", "pe", "-o", "none"},
	}
	for i, args := range setup {
		if _, _, err := c.run(args...); err != nil {
			return err
		}
		if i == 0 {
			// Deleting the group deletes the server, and so its PostgreSQL cluster (and, under
			// root, its OS user), which would outlive pglink and the data dir.
			defer func() {
				if _, _, err := c.run("group", "delete", "-n", "db-rg", "--yes"); err != nil {
					fmt.Fprintln(os.Stderr, "bench: clean up:", err)
				}
			}()
		}
	}
	srvID, _, err := c.run("postgres", "flexible-server", "show", "-g", "db-rg", "-n", "orders-db", "--query", "id", "-o", "tsv")
	if err != nil {
		return err
	}
	for i := range runs {
		if _, _, err := c.run("network", "private-endpoint", "create", "-g", "db-rg", "-n", fmt.Sprintf("pe%d", i), "--vnet-name", "app-vnet",
			"--subnet", "pe", "--private-connection-resource-id", strings.TrimSpace(srvID), "--group-id", "postgresqlServer",
			"--connection-name", "c", "--manual-request", "-o", "none"); err != nil {
			return err
		}
	}
	out, _, err := c.run("network", "private-endpoint-connection", "list", "-g", "db-rg", "-n", "orders-db",
		"--type", "Microsoft.DBforPostgreSQL/flexibleServers", "--status", "Pending", "--query", "[].name")
	if err != nil {
		return err
	}
	var pending []string
	if err := json.Unmarshal([]byte(out), &pending); err != nil || len(pending) < runs {
		return fmt.Errorf("want %d Pending connections, have %q (%v)", runs, out, err)
	}

	type result struct {
		name string
		goal time.Duration
		took []time.Duration
	}
	var results []result
	measure := func(name string, goal time.Duration, args func(i int) []string) error {
		r := result{name: name, goal: goal}
		for i := range runs {
			_, took, err := c.run(args(i)...)
			if err != nil {
				return err
			}
			r.took = append(r.took, took)
		}
		results = append(results, r)
		return nil
	}
	steps := []struct {
		name string
		goal time.Duration
		args func(i int) []string
	}{
		{"account show (no request)", 0, func(int) []string { return []string{"account", "show"} }},
		{"network private-endpoint-connection approve (the seed's)", 300 * time.Millisecond, func(i int) []string {
			return strings.Fields("network private-endpoint-connection approve --description approved-by-the-bench --resource-group db-rg --resource-name orders-db --type Microsoft.DBforPostgreSQL/flexibleServers --name " + pending[i])
		}},
		{"postgres flexible-server show", 150 * time.Millisecond, func(int) []string {
			return []string{"postgres", "flexible-server", "show", "-g", "db-rg", "-n", "orders-db"}
		}},
		{"network private-endpoint-connection list", 150 * time.Millisecond, func(int) []string {
			return []string{"network", "private-endpoint-connection", "list", "-g", "db-rg", "-n", "orders-db", "--type", "Microsoft.DBforPostgreSQL/flexibleServers"}
		}},
		{"postgres flexible-server list -o table", 150 * time.Millisecond, func(int) []string {
			return []string{"postgres", "flexible-server", "list", "-o", "table"}
		}},
	}
	for _, s := range steps {
		if err := measure(s.name, s.goal, s.args); err != nil {
			return err
		}
	}
	fmt.Printf("%-58s %8s %8s %8s  %s\n", fmt.Sprintf("command (%d runs each, %s engine)", runs, engine), "median", "p90", "max", "goal")
	for _, r := range results {
		slices.Sort(r.took)
		med, p90, mx := r.took[len(r.took)/2], r.took[len(r.took)*9/10], r.took[len(r.took)-1]
		goal := "-"
		if r.goal > 0 {
			verdict := "met"
			if med >= r.goal {
				verdict = "MISSED"
			}
			goal = fmt.Sprintf("median < %v: %s", r.goal, verdict)
		}
		fmt.Printf("%-58s %8s %8s %8s  %s\n", r.name, ms(med), ms(p90), ms(mx), goal)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
