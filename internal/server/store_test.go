package server

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/postgres"
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

// TestSQLiteKeepsFirstStartInDataDir: with a store of its own (SQLite), pglink keeps the
// first-start state in the data dir only; the store never holds the administrator's
// credentials in clear.
func TestSQLiteKeepsFirstStartInDataDir(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start(t.Context(), Config{DataDir: dir, Listen: "127.0.0.1:0", Engine: "records",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	b := srv.Bootstrap()
	err = srv.Store().View(t.Context(), func(tx store.Tx) error {
		_, err := tx.Setting(t.Context(), sharedSetting)
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Setting(%s) in the SQLite store = %v; want ErrNotFound", sharedSetting, err)
	}
	for _, name := range []string{"pglink.db", "pglink.db-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{b.ClientSecret, b.Password} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds an administrator secret in clear", name)
			}
		}
	}
}

// TestMigrateStore: `pglink store migrate` creates or upgrades a PostgreSQL store's schema to
// this pglink's version, and refuses to create a SQLite store that is not there.
func TestMigrateStore(t *testing.T) {
	url := pgtest.New(t).CreateDatabase(t)
	v, err := MigrateStore(t.Context(), Config{Store: url})
	if err != nil || v != postgres.SchemaVersion() {
		t.Fatalf("MigrateStore(empty database) = %d, %v; want %d", v, err, postgres.SchemaVersion())
	}
	db, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	var stored int
	if err := db.QueryRow(t.Context(), `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&stored); err != nil || stored != v {
		t.Errorf("stored schema version = %d, %v; want %d", stored, err, v)
	}
	if v, err := MigrateStore(t.Context(), Config{Store: url}); err != nil || v != postgres.SchemaVersion() {
		t.Errorf("MigrateStore again = %d, %v; want %d", v, err, postgres.SchemaVersion())
	}

	dir := t.TempDir()
	if _, err := MigrateStore(t.Context(), Config{DataDir: dir}); err == nil {
		t.Errorf("MigrateStore(data dir without a store) = nil; want an error")
	}
	if _, err := os.Stat(filepath.Join(dir, "pglink.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("MigrateStore created a SQLite store: %v", err)
	}
}
