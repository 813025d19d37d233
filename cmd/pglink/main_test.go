package main

import (
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
