package server

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgress://pglink:s3cret@db/pglink", `"postgress://pglink:xxxxx@db/pglink"`},
		{"mysql://db/pglink?password=s3cret", `"mysql://db/pglink?password=xxxxx"`},
		{"host=db user=pglink password=s3cret", "(not a URL)"},
		{"pg:pglink:s3cret@db", `"pg:…"`},
		{"%zz", "(not a URL)"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestOpenStoreRefusesUnknownSchemes(t *testing.T) {
	for _, s := range []string{"mysql://u:s3cret@db/x", "host=db password=s3cret", "file:/tmp/x.db"} {
		st, err := openStore(t.Context(), Config{DataDir: t.TempDir(), Store: s}, nil)
		if err == nil {
			st.Close()
			t.Errorf("openStore(%s) = nil; want an error", redactURL(s))
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "unsupported store") {
			t.Errorf("openStore(%s) = %v; want an unsupported store error without the password", redactURL(s), err)
		}
	}
}
