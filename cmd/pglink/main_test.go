package main

import (
	"errors"
	"flag"
	"io"
	"testing"
)

func TestStoreFlag(t *testing.T) {
	const env = "postgres://pglink:s3cret@db/pglink"
	tests := []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", ""},
		{nil, env, env},
		{[]string{"--store", "sqlite:/tmp/x.db"}, env, "sqlite:/tmp/x.db"},
		{[]string{"--store="}, env, ""}, // an explicit empty --store is SQLite in the data dir
		{[]string{"--store", "postgresql://db/pglink"}, "", "postgresql://db/pglink"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var store string
		fs.StringVar(&store, "store", "", "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string {
			if k == storeEnv {
				return tt.env
			}
			return ""
		}
		if got := storeFlag(fs, getenv); got != tt.want {
			t.Errorf("storeFlag(%q, %s=%q) = %q; want %q", tt.args, storeEnv, tt.env, got, tt.want)
		}
	}
}

func TestEventLoopsFlag(t *testing.T) {
	for _, n := range []int{0, 1, maxEventLoops} {
		if err := checkEventLoops(n); err != nil {
			t.Errorf("checkEventLoops(%d) = %v; want nil", n, err)
		}
	}
	for _, n := range []int{-1, maxEventLoops + 1} {
		var ue usageError
		if err := checkEventLoops(n); !errors.As(err, &ue) {
			t.Errorf("checkEventLoops(%d) = %v; want a usage error", n, err)
		}
	}
}
