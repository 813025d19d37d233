package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Login kinds of a profile.
const (
	kindUser             = "user"
	kindServicePrincipal = "servicePrincipal"
)

// errNoLogin is returned by loadProfile when nobody is logged in.
var errNoLogin = errors.New("please run 'pglink login' to set up an account")

// profile is the login a command runs as, kept in DIR/profile.json (mode 0600, in a 0700
// directory). It holds secrets: the access and refresh tokens and, for a service principal, its
// client secret (az keeps the same in service_principal_entries.json).
type profile struct {
	ARMEndpoint      string    `json:"armEndpoint"`
	AuthorityHost    string    `json:"authorityHost"`
	TenantID         string    `json:"tenantId"`
	SubscriptionID   string    `json:"subscriptionId"`
	SubscriptionName string    `json:"subscriptionName,omitempty"`
	CAFile           string    `json:"caFile,omitempty"` // absolute; empty: the system's roots
	Kind             string    `json:"kind"`             // kindUser or kindServicePrincipal
	Name             string    `json:"name"`             // user name or client id
	AccessToken      string    `json:"accessToken,omitempty"`
	ExpiresOn        time.Time `json:"expiresOn"`
	RefreshToken     string    `json:"refreshToken,omitempty"` // users
	ClientSecret     string    `json:"clientSecret,omitempty"` // service principals
}

const profileFile = "profile.json"

// loadProfile reads the profile in dir; errNoLogin if there is none.
func loadProfile(dir string) (*profile, error) {
	data, err := os.ReadFile(filepath.Join(dir, profileFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoLogin
	}
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	var p profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decode profile %s: %w", filepath.Join(dir, profileFile), err)
	}
	return &p, nil
}

// save writes the profile to dir atomically (a temporary file renamed over the old one), so a
// reader sees the old profile or the new one, never a part. It creates dir with mode 0700 and
// tightens an existing one to it.
func (p *profile) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict config directory: %w", err)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode profile: %w", err)
	}
	f, err := os.CreateTemp(dir, profileFile+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write profile: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, profileFile)); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	return nil
}

// deleteProfile removes the profile from dir; it is not an error if there is none.
func deleteProfile(dir string) error {
	if err := os.Remove(filepath.Join(dir, profileFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete profile: %w", err)
	}
	return nil
}
