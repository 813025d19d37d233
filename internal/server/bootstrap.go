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
	"strings"

	"github.com/pglink/pglink/internal/authz"
	"github.com/pglink/pglink/internal/identity"
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

// principalDoc is how the identity side of a principal is stored (store.Principal.Body).
type principalDoc struct {
	Kind        string `json:"kind"` // "User" or "ServicePrincipal"
	DisplayName string `json:"displayName"`
	AppID       string `json:"appId,omitempty"`
	SecretHash  string `json:"secretHash"`
}

// firstStart creates the tenant, the default subscription and the administrator on an empty
// data dir (writing bootstrap.json first, so a crash half-way is finished by the next start),
// or reads them back. It returns the bootstrap with the secrets.
func firstStart(ctx context.Context, st store.Store, dir string) (Bootstrap, error) {
	b, err := ReadBootstrap(dir)
	if errors.Is(err, os.ErrNotExist) {
		b = Bootstrap{
			TenantID:       resource.NewGUID(),
			SubscriptionID: resource.NewGUID(),
			ClientID:       resource.NewGUID(),
			ClientSecret:   randomSecret(32),
			Username:       "admin@pglink.local",
			Password:       "Pg1-" + randomSecret(12),
		}
		err = writeBootstrap(dir, b)
	}
	if err != nil {
		return b, err
	}
	if err := ensurePrincipal(ctx, st, b.ClientID, b.ClientSecret, principalDoc{Kind: "ServicePrincipal", DisplayName: "pglink-admin", AppID: b.ClientID}); err != nil {
		return b, err
	}
	if err := ensurePrincipal(ctx, st, b.Username, b.Password, principalDoc{Kind: "User", DisplayName: "pglink administrator"}); err != nil {
		return b, err
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
	var doc principalDoc
	if err := json.Unmarshal(p.Body, &doc); err != nil {
		return fmt.Errorf("decode principal %s: %w", login, err)
	}
	if err := authorization.EnsureAssignment(ctx, st, resource.ID{}, authz.OwnerID, p.ObjectID, doc.Kind); err != nil {
		return fmt.Errorf("assign Owner to %s: %w", login, err)
	}
	return nil
}

// ensurePrincipal creates the principal with login unless it exists.
func ensurePrincipal(ctx context.Context, st store.Store, login, secret string, doc principalDoc) error {
	hash, err := identity.HashSecret(secret)
	if doc.Kind == "ServicePrincipal" {
		hash, err = identity.HashRandomSecret(secret)
	}
	if err != nil {
		return err
	}
	doc.SecretHash = hash
	body, _ := json.Marshal(doc)
	return st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Principal(ctx, login); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.PutPrincipal(ctx, store.Principal{ObjectID: resource.NewGUID(), Login: login, Body: body}); err != nil {
			return fmt.Errorf("create principal %s: %w", login, err)
		}
		return nil
	})
}

// directory checks credentials against the principals in the store.
type directory struct {
	st       store.Store
	tenantID string
}

func (d directory) lookup(ctx context.Context, login, secret, kind string) (identity.Principal, error) {
	var p store.Principal
	err := d.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = tx.Principal(ctx, login)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return identity.Principal{}, identity.ErrInvalidCredentials
	}
	if err != nil {
		return identity.Principal{}, fmt.Errorf("look up principal: %w", err)
	}
	var doc principalDoc
	if err := json.Unmarshal(p.Body, &doc); err != nil {
		return identity.Principal{}, fmt.Errorf("decode principal: %w", err)
	}
	if doc.Kind != kind || !identity.CheckSecret(doc.SecretHash, secret) {
		return identity.Principal{}, identity.ErrInvalidCredentials
	}
	pr := identity.Principal{ObjectID: p.ObjectID, Name: doc.DisplayName, Kind: kind, TenantID: d.tenantID}
	if kind == "User" {
		pr.Name = strings.ToLower(p.Login)
	} else {
		pr.AppID = doc.AppID
	}
	return pr, nil
}

func (d directory) ServicePrincipal(ctx context.Context, clientID, secret string) (identity.Principal, error) {
	return d.lookup(ctx, clientID, secret, "ServicePrincipal")
}

func (d directory) User(ctx context.Context, username, password string) (identity.Principal, error) {
	return d.lookup(ctx, username, password, "User")
}
