package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	pg "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"golang.org/x/text/unicode/norm"

	"github.com/pglink/pglink/internal/server"
)

// cleanupClusters stops, when the test ends, every PostgreSQL cluster pglink left running
// below dataDir (clusters outlive pglink by design) and removes their OS users.
func cleanupClusters(t *testing.T, dataDir string) {
	t.Helper()
	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(dataDir, "servers", "*", "data", "postmaster.pid"))
		for _, p := range pids {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
			if err != nil || pid <= 0 {
				continue
			}
			syscall.Kill(pid, syscall.SIGQUIT)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if syscall.Kill(pid, 0) != nil {
					break
				}
			}
		}
		dirs, _ := filepath.Glob(filepath.Join(dataDir, "servers", "*", "data"))
		for _, d := range dirs {
			if u := ownerName(filepath.Dir(d)); strings.HasPrefix(u, "pglink-") {
				if out, err := exec.Command("userdel", u).CombinedOutput(); err != nil {
					t.Errorf("userdel %s: %v: %s", u, err, out)
				}
			}
		}
	})
}

// ownerName returns the name of the OS user owning path, or "".
func ownerName(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

// syncBuffer is a bytes.Buffer safe for concurrent writes: pglink's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// TestSecretsAtRest: after servers are created with ASCII and non-ASCII administrator
// passwords and a password is changed, no password is anywhere in the data dir (the store and
// its WAL, the clusters and their logs) nor in pglink's log; nothing in the data dir is readable
// by other OS users; and deleting a server removes its OS user.
func TestSecretsAtRest(t *testing.T) {
	dir := traversableDir(t)
	var logs syncBuffer
	block := fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
	in := start(t, func(c *server.Config) {
		c.Engine = "local"
		c.DataDir = dir
		c.EndpointNetwork = block
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := newClients(t, in)
	ctx := ctxT(t)
	c.group(t, "rg")

	passwords := map[string]string{ // server: administrator password
		"ascii":    "Ascii-Secret-Pass1",
		"cyrillic": "Пароль-Secret1",
		"latin":    "pässwörd-ÅÅ1",
		"wide":     "Ｗｉｄｅ-ｐａｓｓ-１２３",
	}
	for name, pw := range passwords {
		spec := serverSpec(c.location)
		spec.Properties.Version = nil
		spec.Properties.AdministratorLoginPassword = to.Ptr(pw)
		poller, err := c.servers.BeginCreate(ctx, "rg", name, spec, nil)
		if err != nil {
			t.Fatalf("create server %s: %v", name, err)
		}
		if _, err := poller.PollUntilDone(ctx, &azcoreFast); err != nil {
			t.Fatalf("create server %s: %v", name, err)
		}
	}
	changed := "Nëw-Пароль-Secret2"
	up, err := c.servers.BeginUpdate(ctx, "rg", "latin", pg.ServerForUpdate{Properties: &pg.ServerPropertiesForUpdate{
		AdministratorLoginPassword: to.Ptr(changed)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}

	// The changed password works through the gateway, the old one does not.
	rp, err := c.rules.BeginCreateOrUpdate(ctx, "rg", "latin", "me", pg.FirewallRule{Properties: &pg.FirewallRuleProperties{
		StartIPAddress: to.Ptr("127.0.0.1"), EndIPAddress: to.Ptr("127.0.0.1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.PollUntilDone(ctx, &azcoreFast); err != nil {
		t.Fatal(err)
	}
	addr := serverAddress(t, c, "rg", "latin")
	conn, err := connect(ctx, addr, "127.0.0.1", "require", changed)
	if err != nil {
		t.Fatalf("connect with the changed password %q: %v", changed, err)
	}
	if err := selectOne(t, conn); err != nil {
		t.Error(err)
	}
	conn.Close(context.Background())
	if conn, err := connect(ctx, addr, "127.0.0.1", "require", passwords["latin"]); err == nil {
		conn.Close(context.Background())
		t.Errorf("connected with the old password; want a refusal")
	}

	// A user's password, a service principal's secret and a refresh token, made and used
	// through the identity admin API and the token endpoint, are never written down either.
	idSecrets := directorySecrets(t, in)

	secrets := append([]string{changed}, idSecrets...)
	for _, pw := range passwords {
		secrets = append(secrets, pw)
	}
	// Every way a password might be written down: its UTF-8 bytes, as in JSON with \u escapes,
	// and as SASLprep prepares it for hashing (NFKC).
	var forms [][]byte
	for _, s := range secrets {
		forms = append(forms, []byte(s), []byte(strings.Trim(strconv.QuoteToASCII(s), `"`)), []byte(norm.NFKC.String(s)))
	}
	check := func(where string, data []byte) {
		for i, f := range forms {
			if i%3 != 0 && bytes.Equal(f, forms[i-i%3]) {
				continue // the same form again
			}
			if bytes.Contains(data, f) {
				t.Errorf("%s holds password %q (as %q)", where, secrets[i/3], f)
			}
		}
	}
	// scan searches every file below dir and checks its mode; want names files that must be
	// among them.
	scan := func(when string, want ...string) {
		seen := map[string]bool{}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			perm := fi.Mode().Perm()
			switch {
			case d.IsDir() && perm&0o066 != 0:
				t.Errorf("%s: directory %s has mode %v; want no read or write for group and others", when, path, perm)
			case !d.IsDir() && perm&0o077 != 0:
				t.Errorf("%s: %s has mode %v; want no permission for group and others", when, path, perm)
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			seen[d.Name()] = true
			check(when+": "+path, data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !seen[w] {
				t.Errorf("%s: no %s in the data dir; want the test to have searched it", when, w)
			}
		}
		t.Logf("%s: searched files of %d distinct names", when, len(seen))
	}
	scan("pglink running", "pglink.db", "pglink.db-wal", "postgres.log")
	// Stop pglink so that everything it buffers is on disk, then look again.
	in.stop()
	scan("pglink stopped", "pglink.db", "postgres.log")
	check("pglink's log", logs.Bytes())
	if len(logs.Bytes()) == 0 {
		t.Errorf("pglink's log is empty; want the log it wrote")
	}

	// Deleting a server removes its OS user.
	in.boot_()
	c = newClients(t, in)
	clusters, _ := filepath.Glob(filepath.Join(dir, "servers", "*", "data"))
	owners := map[string]bool{}
	for _, d := range clusters {
		owners[ownerName(filepath.Dir(d))] = true
	}
	if len(owners) != len(passwords) {
		t.Errorf("OS users of the %d servers: %v; want one each", len(passwords), owners)
	}
	for u := range owners {
		if !strings.HasPrefix(u, "pglink-") {
			t.Errorf("a cluster runs as %q; want an OS user pglink-…", u)
		}
	}
	for name := range passwords {
		dp, err := c.servers.BeginDelete(ctx, "rg", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dp.PollUntilDone(ctx, &azcoreFast); err != nil {
			t.Fatal(err)
		}
	}
	for u := range owners {
		if _, err := user.Lookup(u); err == nil {
			t.Errorf("OS user %s still exists after its server was deleted", u)
		}
	}
}

// directorySecrets makes a user and a service principal through the identity admin API, signs
// both in (the user with a refresh token, which it uses once) and returns the user's password,
// the client secret and both refresh tokens.
func directorySecrets(t *testing.T, in *instance) []string {
	t.Helper()
	admin := in.token()
	password := "Dir-Pässword-91"
	st, body := in.call(t, admin, "POST", "/v1.0/users", map[string]any{"userPrincipalName": "secret.keeper@pglink.local",
		"displayName": "Secret Keeper", "passwordProfile": map[string]string{"password": password}, "accountEnabled": true})
	if st != 201 {
		t.Fatalf("create user: %d %s", st, body)
	}
	_, appID, secret := in.newSP(t, "secretive")
	in.tokenFor(t, appID, secret)
	tokenURL := in.boot.AuthorityHost + "/" + in.boot.TenantID + "/oauth2/v2.0/token"
	form := func(v url.Values) map[string]any {
		resp, err := in.httpClient().PostForm(tokenURL, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("token request: %d %v %v", resp.StatusCode, out, err)
		}
		return out
	}
	scope := in.boot.ARMEndpoint + "/.default offline_access openid"
	first := form(url.Values{"grant_type": {"password"}, "client_id": {"pglink-cli"}, "username": {"secret.keeper@pglink.local"},
		"password": {password}, "scope": {scope}})
	rt1, _ := first["refresh_token"].(string)
	second := form(url.Values{"grant_type": {"refresh_token"}, "client_id": {"pglink-cli"}, "refresh_token": {rt1}, "scope": {scope}})
	rt2, _ := second["refresh_token"].(string)
	if rt1 == "" || rt2 == "" {
		t.Fatalf("no refresh tokens: %v, %v", first, second)
	}
	return []string{password, secret, rt1, rt2}
}
