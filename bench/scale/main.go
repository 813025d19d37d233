// Command scale measures pglink scaled out: ARM API latency with many resources stored, on the
// SQLite store with one replica and on a PostgreSQL store with several replicas under the same
// open-loop load, and the lag of the change feed from one replica to another.
//
//	go run ./bench/scale [-resources 100000] [-rate 200] [-duration 10s] [-replicas 3]
//
// It seeds the same resources (resource groups and flexible servers, in the shape the API
// stores them) into each store, sends GET of a server and one page of a group's server list
// in turn, spread round-robin over the replicas, and meanwhile commits writes through replica
// A's store, timing each until replica B's Notify fires and B's store shows it, and again for a
// while after the load, with no API requests. PostgreSQL is a
// throwaway cluster it starts itself (the newest installed; as root it runs as the postgres OS
// user) and removes on exit, on SIGINT and SIGTERM too. It prints a table and a PASS or MISS
// line for the lag's p99 against 50 ms; it exits 1 if a request failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.resources, "resources", cfg.resources, "resources stored: resource groups and flexible servers")
	flag.IntVar(&cfg.groups, "groups", cfg.groups, "resource groups the servers are spread over")
	flag.IntVar(&cfg.rate, "rate", cfg.rate, "API requests per second, in all (open loop); GET and LIST in turn")
	flag.DurationVar(&cfg.duration, "duration", cfg.duration, "how long to measure each setup")
	flag.DurationVar(&cfg.warmup, "warmup", cfg.warmup, "load sent before measuring, not counted")
	flag.IntVar(&cfg.replicas, "replicas", cfg.replicas, "pglink replicas on the PostgreSQL store")
	flag.IntVar(&cfg.lagRate, "lag-rate", cfg.lagRate, "change-feed writes per second while measuring")
	flag.DurationVar(&cfg.lagAlone, "lag-alone", cfg.lagAlone, "how long to measure the change feed after the load, with no API requests (0: not at all)")
	flag.BoolVar(&cfg.durable, "durable", cfg.durable, "run PostgreSQL with fsync and synchronous_commit on, as the SQLite store syncs every commit; false: the test settings")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of each setup's measured load to PREFIX-sqlite.pprof and PREFIX-postgresql.pprof")
	verbose := flag.Bool("v", false, "log what the replicas log at level info and above (default: errors only)")
	flag.Parse()
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}
