package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/directory"
	"github.com/pglink/pglink/internal/providers/authorization"
	"github.com/pglink/pglink/internal/providers/resources"
	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Bootstrap is the contents of DIR/bootstrap.json: everything automation needs to reach the
// first administrator's account. The file is written with mode 0600.
type Bootstrap struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	ARMEndpoint    string `json:"armEndpoint"`
	AuthorityHost  string `json:"authorityHost"`
	CACertFile     string `json:"caCertFile"`
	// Demo is what --demo seeded on this data dir; nil without it.
	Demo *Demo `json:"demo,omitempty"`
}

// ReadBootstrap reads DIR/bootstrap.json.
func ReadBootstrap(dir string) (Bootstrap, error) {
	var b Bootstrap
	data, err := os.ReadFile(filepath.Join(dir, "bootstrap.json"))
	if err != nil {
		return b, fmt.Errorf("read bootstrap: %w", err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("decode bootstrap: %w", err)
	}
	return b, nil
}

func writeBootstrap(dir string, b Bootstrap) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "bootstrap.json.tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write bootstrap: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "bootstrap.json"))
}

func randomSecret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// firstStart creates the tenant, the default subscription and the administrator on an empty
// data dir (writing bootstrap.json first, so a crash half-way is finished by the next start),
// or reads them back. It returns the bootstrap with the secrets.
func firstStart(ctx context.Context, st store.Store, dir string) (Bootstrap, error) {
	b, err := ReadBootstrap(dir)
	if errors.Is(err, os.ErrNotExist) {
		b = newBootstrap()
		err = writeBootstrap(dir, b)
	}
	if err != nil {
		return b, err
	}
	if err := directory.EnsureBootstrap(ctx, st, directory.KindServicePrincipal, b.ClientID, b.ClientSecret, "pglink-admin"); err != nil {
		return b, fmt.Errorf("create administrator: %w", err)
	}
	if err := directory.EnsureBootstrap(ctx, st, directory.KindUser, b.Username, b.Password, "pglink administrator"); err != nil {
		return b, fmt.Errorf("create administrator: %w", err)
	}
	if err := resources.EnsureSubscription(ctx, st, b.SubscriptionID, b.TenantID, "pglink"); err != nil {
		return b, fmt.Errorf("create subscription: %w", err)
	}
	// The administrator is Owner at the root scope; a data dir from before role assignments
	// gets the assignments at its next start.
	for _, login := range []string{b.ClientID, b.Username} {
		if err := ensureOwner(ctx, st, login); err != nil {
			return b, err
		}
	}
	return b, nil
}

// newBootstrap returns a new tenant, subscription and administrator.
func newBootstrap() Bootstrap {
	return Bootstrap{
		TenantID:       resource.NewGUID(),
		SubscriptionID: resource.NewGUID(),
		ClientID:       resource.NewGUID(),
		ClientSecret:   randomSecret(32),
		Username:       "admin@pglink.local",
		Password:       "Pg1-" + randomSecret(12),
	}
}

// ensureOwner gives the principal with login an Owner assignment at the root scope unless it
// has one.
func ensureOwner(ctx context.Context, st store.Store, login string) error {
	var p store.Principal
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = tx.Principal(ctx, login)
		return err
	})
	if err != nil {
		return fmt.Errorf("look up principal %s: %w", login, err)
	}
	var doc struct{ Kind string }
	if err := json.Unmarshal(p.Body, &doc); err != nil {
		return fmt.Errorf("decode principal %s: %w", login, err)
	}
	if err := authorization.EnsureAssignment(ctx, st, resource.ID{}, authz.OwnerID, p.ObjectID, doc.Kind); err != nil {
		return fmt.Errorf("assign Owner to %s: %w", login, err)
	}
	return nil
}
