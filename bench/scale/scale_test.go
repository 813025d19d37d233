package main

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

func TestListPath(t *testing.T) {
	s := resourceSet{sub: "00000000-0000-0000-0000-000000000001", groups: 3, servers: 10}
	tests := []struct {
		g, k int
		want string
	}{
		{0, 0, "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scale-g0000/providers/Microsoft.DBforPostgreSQL/flexibleServers?api-version=2024-08-01"},
		// Group 1 holds servers 1, 4, 7: page 1 of size 2 starts after server 4.
		{1, 1, "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scale-g0001/providers/Microsoft.DBforPostgreSQL/flexibleServers?%24skipToken=%2Fsubscriptions%2F00000000-0000-0000-0000-000000000001%2Fresourcegroups%2Fscale-g0001%2Fproviders%2Fmicrosoft.dbforpostgresql%2Fflexibleservers%2Fscale-s0000004&api-version=2024-08-01"},
	}
	for _, tt := range tests {
		if got := s.listPath(tt.g, tt.k, 2); got != tt.want {
			t.Errorf("listPath(%d, %d, 2) = %s; want %s", tt.g, tt.k, got, tt.want)
		}
	}
	for g, want := range []int{4, 3, 3} {
		if got := s.inGroup(g); got != want {
			t.Errorf("inGroup(%d) = %d; want %d", g, got, want)
		}
	}
}

// TestRun runs the whole benchmark, small: both setups serve every request, and the report
// has its tables and a verdict on the lag.
func TestRun(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" { // under CI it always runs
		t.Skip("starts pglink replicas and PostgreSQL")
	}
	var out bytes.Buffer
	cfg := defaultConfig()
	cfg.resources, cfg.groups, cfg.rate, cfg.duration, cfg.warmup, cfg.replicas, cfg.lagRate = 600, 5, 20, time.Second, 0, 2, 10
	cfg.durable = false
	cfg.out = &out
	err := run(t.Context(), cfg)
	if errors.Is(err, errNoPostgres) {
		pgtest.Require(t, err)
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.Bytes())
	}
	// Rows with no errors, and the verdict.
	for _, want := range []string{`SQLite +1 +GET server +0 `, `SQLite +1 +LIST page +0 `, `PostgreSQL +2 +GET server +0 `,
		`PostgreSQL +2 +LIST page +0 `, `(PASS|MISS) change-feed lag p99`} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("report lacks %q:\n%s", want, out.Bytes())
		}
	}
}
