package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestProfileSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if _, err := loadProfile(dir); !errors.Is(err, errNoLogin) {
		t.Fatalf("loadProfile(empty) = %v; want errNoLogin", err)
	}
	want := &profile{ARMEndpoint: "https://127.0.0.1:8443", AuthorityHost: "https://127.0.0.1:8443", TenantID: "t", SubscriptionID: "s",
		Kind: kindUser, Name: "dana@pglink.local", AccessToken: "at", ExpiresOn: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), RefreshToken: "rt"}
	if err := want.save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := loadProfile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *want {
		t.Errorf("loadProfile = %+v; want %+v", got, want)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, profileFile): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %o", path, st.Mode().Perm(), err, mode)
		}
	}
	if err := deleteProfile(dir); err != nil {
		t.Fatal(err)
	}
	if err := deleteProfile(dir); err != nil {
		t.Errorf("deleteProfile twice: %v", err)
	}
	if _, err := loadProfile(dir); !errors.Is(err, errNoLogin) {
		t.Errorf("loadProfile after delete = %v; want errNoLogin", err)
	}
}

func TestProfileTightensDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, profileFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (&profile{Kind: kindServicePrincipal, ClientSecret: "s"}).save(dir); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, profileFile): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %o", path, st.Mode().Perm(), err, mode)
		}
	}
}

// TestProfileAtomic: a reader racing writers always sees a whole profile, and no temporary
// files are left behind.
func TestProfileAtomic(t *testing.T) {
	dir := t.TempDir()
	big := &profile{Kind: kindUser, Name: "a", AccessToken: string(make([]byte, 64<<10))}
	small := &profile{Kind: kindUser, Name: "b"}
	if err := small.save(dir); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := small
			if i%2 == 0 {
				p = big
			}
			if err := p.save(dir); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 300 {
		data, err := os.ReadFile(filepath.Join(dir, profileFile))
		if err != nil {
			t.Fatal(err)
		}
		var p profile
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("read a partial profile (%d bytes): %v", len(data), err)
		}
	}
	close(stop)
	wg.Wait()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("config directory holds %d entries; want only %s", len(entries), profileFile)
	}
}
