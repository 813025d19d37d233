package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/pglink/pglink/internal/identity"
	"github.com/pglink/pglink/internal/store"
)

// sharedSetting names the store setting that holds the shared first-start state.
const sharedSetting = "bootstrap"

// shared is the first-start state every pglink process on one shared store (sharedStore)
// shares: the tenant, the default subscription and the administrator (the fields of
// bootstrap.json but the endpoints), the key that signs tokens and the local CA. The store holds
// it, as JSON, secrets and all; each process mirrors it into its data dir, where the rest of
// pglink reads it: bootstrap.json, identity-key.pem, tls/ca.pem and tls/ca-key.pem.
type shared struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	SigningKey     string `json:"signingKey"` // PEM, as identity.MarshalKey writes it
	CACert         string `json:"caCert"`     // PEM
	CAKey          string `json:"caKey"`      // PEM
}

// sharedFiles are the paths in a data dir that mirror the shared state.
type sharedFiles struct{ bootstrap, key, caCert, caKey string }

func filesOf(dir string) sharedFiles {
	return sharedFiles{
		bootstrap: filepath.Join(dir, "bootstrap.json"),
		key:       filepath.Join(dir, "identity-key.pem"),
		caCert:    filepath.Join(dir, "tls", "ca.pem"),
		caKey:     filepath.Join(dir, "tls", "ca-key.pem"),
	}
}

// shareFirstStart makes the store hold the shared first-start state, once, and mirrors it into
// dir. This process proposes the state it finds in dir (a data dir from before the state was
// kept in the store keeps its tenant, keys and CA), made up where dir has none. The proposal is
// written only if the store holds no state yet, in the transaction that looks: Updates behave as
// if run one after another, so of several processes starting together on an empty store exactly
// one creates the state and the others adopt it. It returns the store's state.
func shareFirstStart(ctx context.Context, st store.Store, dir string, log *slog.Logger) (shared, error) {
	local, found, err := readShared(dir)
	if err != nil {
		return shared{}, err
	}
	var got shared
	created := false
	err = st.Update(ctx, func(tx store.Tx) error {
		created = false
		data, err := tx.Setting(ctx, sharedSetting)
		if err == nil {
			return json.Unmarshal(data, &got)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if data, err = json.Marshal(local); err != nil {
			return err
		}
		got, created = local, true
		return tx.PutSetting(ctx, sharedSetting, data)
	})
	if err != nil {
		return shared{}, fmt.Errorf("shared first-start state: %w", err)
	}
	if got.TenantID == "" || got.SigningKey == "" || got.CACert == "" || got.CAKey == "" {
		return shared{}, errors.New("shared first-start state: the store's is incomplete")
	}
	switch {
	case created:
		log.Info("stored the first-start state", "tenant", got.TenantID, "from_data_dir", found)
	case found && got.TenantID != local.TenantID:
		log.Warn("the data dir belonged to another tenant; it now mirrors the store's",
			"data_dir_tenant", local.TenantID, "tenant", got.TenantID)
	}
	if err := mirrorShared(dir, got); err != nil {
		return shared{}, fmt.Errorf("shared first-start state: %w", err)
	}
	return got, nil
}

// readShared returns the shared state kept in dir, making up what is missing, and whether dir
// had a bootstrap.json.
func readShared(dir string) (s shared, found bool, err error) {
	f := filesOf(dir)
	b, err := ReadBootstrap(dir)
	switch {
	case err == nil:
		found = true
	case errors.Is(err, os.ErrNotExist):
		b = newBootstrap()
	default:
		return s, false, err
	}
	s = shared{TenantID: b.TenantID, SubscriptionID: b.SubscriptionID, ClientID: b.ClientID,
		ClientSecret: b.ClientSecret, Username: b.Username, Password: b.Password}

	key, err := os.ReadFile(f.key)
	if errors.Is(err, os.ErrNotExist) {
		k, err := identity.GenerateKey()
		if err != nil {
			return s, found, err
		}
		if key, err = identity.MarshalKey(k); err != nil {
			return s, found, err
		}
	} else if err != nil {
		return s, found, fmt.Errorf("read signing key: %w", err)
	} else if _, err := identity.ParseKey(key); err != nil {
		return s, found, fmt.Errorf("read signing key %s: %w", f.key, err)
	}
	s.SigningKey = string(key)

	caCert, errCert := os.ReadFile(f.caCert)
	caKey, errKey := os.ReadFile(f.caKey)
	switch {
	case errors.Is(errCert, os.ErrNotExist) || errors.Is(errKey, os.ErrNotExist):
		if caCert, caKey, err = makeCA(); err != nil {
			return s, found, fmt.Errorf("local CA: %w", err)
		}
	case errCert != nil || errKey != nil:
		return s, found, fmt.Errorf("local CA: %w", errors.Join(errCert, errKey))
	default:
		if _, err := tls.X509KeyPair(caCert, caKey); err != nil {
			return s, found, fmt.Errorf("local CA: %w", err)
		}
	}
	s.CACert, s.CAKey = string(caCert), string(caKey)
	return s, found, nil
}

// mirrorShared writes s into dir where it differs from what is there.
func mirrorShared(dir string, s shared) error {
	f := filesOf(dir)
	b, err := ReadBootstrap(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	want := b
	want.TenantID, want.SubscriptionID, want.ClientID, want.ClientSecret, want.Username, want.Password =
		s.TenantID, s.SubscriptionID, s.ClientID, s.ClientSecret, s.Username, s.Password
	if err != nil || want != b {
		if err := writeBootstrap(dir, want); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(f.caCert), 0o700); err != nil {
		return err
	}
	for _, w := range []struct {
		path string
		data string
		mode os.FileMode
	}{
		{f.key, s.SigningKey, 0o600},
		{f.caKey, s.CAKey, 0o600},
		{f.caCert, s.CACert, 0o644},
	} {
		if old, err := os.ReadFile(w.path); err == nil && bytes.Equal(old, []byte(w.data)) {
			continue
		}
		tmp := w.path + ".tmp"
		if err := os.WriteFile(tmp, []byte(w.data), w.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, w.path); err != nil {
			return err
		}
	}
	return nil
}
