package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pglink/pglink/internal/store"
	"github.com/pglink/pglink/internal/store/sqlite"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "pglink.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// readDir returns the shared state a data dir mirrors.
func readDir(t *testing.T, dir string) shared {
	t.Helper()
	s, found, err := readShared(dir)
	if err != nil || !found {
		t.Fatalf("read shared state of %s = found %v, %v; want found, nil", dir, found, err)
	}
	return s
}

// TestShareFirstStart: processes that start together on one store with empty data dirs agree on
// one tenant, administrator, signing key and CA, which each mirrors into its data dir.
func TestShareFirstStart(t *testing.T) {
	st := openSQLite(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	const n = 4
	dirs := make([]string, n)
	got := make([]shared, n)
	var wg sync.WaitGroup
	for i := range n {
		dirs[i] = t.TempDir()
		wg.Go(func() {
			var err error
			if got[i], err = shareFirstStart(t.Context(), st, dirs[i], log); err != nil {
				t.Errorf("shareFirstStart(%d) = %v; want nil", i, err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if got[i] != got[0] {
			t.Errorf("process %d got tenant %s, client %s; want process 0's %s, %s", i, got[i].TenantID, got[i].ClientID,
				got[0].TenantID, got[0].ClientID)
		}
		if d := readDir(t, dirs[i]); d != got[0] {
			t.Errorf("data dir %d mirrors tenant %s; want %s and the same keys", i, d.TenantID, got[0].TenantID)
		}
	}
	var stored shared
	err := st.View(t.Context(), func(tx store.Tx) error {
		data, err := tx.Setting(t.Context(), sharedSetting)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &stored)
	})
	if err != nil || stored != got[0] {
		t.Errorf("the store's setting %s = tenant %s, %v; want the state every process got", sharedSetting, stored.TenantID, err)
	}
	if _, err := tls.X509KeyPair([]byte(stored.CACert), []byte(stored.CAKey)); err != nil {
		t.Errorf("the stored CA is not a certificate and its key: %v", err)
	}
}

// TestShareFirstStartKeepsDataDir: the first start on a store of a data dir made before the
// store held the state puts the data dir's state in the store; another data dir then adopts
// it, and its server certificate is reissued under the store's CA.
func TestShareFirstStartKeepsDataDir(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	old := t.TempDir()
	// A data dir from before: bootstrap.json, signing key, CA and server certificate.
	if _, err := shareFirstStart(t.Context(), openSQLite(t), old, log); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ensureTLS(old, []string{"127.0.0.1"}, "", ""); err != nil {
		t.Fatal(err)
	}
	before := readDir(t, old)

	st := openSQLite(t)
	got, err := shareFirstStart(t.Context(), st, old, log)
	if err != nil || got != before {
		t.Fatalf("shareFirstStart(data dir from before) = tenant %s, %v; want its own tenant %s and keys", got.TenantID, err, before.TenantID)
	}

	// Another data dir of its own, with another tenant and CA, adopts the store's.
	other := t.TempDir()
	if _, err := shareFirstStart(t.Context(), openSQLite(t), other, log); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ensureTLS(other, []string{"127.0.0.1"}, "", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := shareFirstStart(t.Context(), st, other, log); err != nil || got != before {
		t.Fatalf("shareFirstStart(another data dir) = tenant %s, %v; want the store's %s", got.TenantID, err, before.TenantID)
	}
	if d := readDir(t, other); d != before {
		t.Errorf("the other data dir mirrors tenant %s; want the store's %s and its keys", d.TenantID, before.TenantID)
	}
	srv, ca, _, err := ensureTLS(other, []string{"127.0.0.1"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(before.CACert))
	leaf, err := x509.ParseCertificate(srv.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("server certificate after adopting the store's CA: %v; want one the store's CA verifies", err)
	}
	if caPEM, _ := os.ReadFile(filepath.Join(other, "tls", "ca.pem")); string(caPEM) != before.CACert || !signedBy(srv, ca) {
		t.Errorf("tls/ca.pem is not the store's CA")
	}
}
