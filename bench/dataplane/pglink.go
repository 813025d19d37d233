package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the bench started in its own process group, so that a terminal's SIGINT
// reaches the bench only and the bench decides how its children end.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // the process's exit; read after done
}

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILLs the process.
func (c *child) stop(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", c.name, c.pid(), grace)
}

// pglinkProc is the `pglink serve` child.
type pglinkProc struct {
	*child
	bin     string
	dataDir string
	logFile string
}

// bootstrap is DATA/bootstrap.json.
type bootstrap struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	ARMEndpoint    string `json:"armEndpoint"`
	AuthorityHost  string `json:"authorityHost"`
	CACertFile     string `json:"caCertFile"`
}

// buildPglink builds cmd/pglink of the module the bench runs in into dir. It returns the
// binary and what it was built from: the commit and the product files changed since.
func buildPglink(ctx context.Context, dir string) (bin, source string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin = filepath.Join(dir, "pglink")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pglink")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./cmd/pglink: %w\n%s", err, out)
	}
	source = "a tree outside git"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		source = "commit " + strings.TrimSpace(string(out))
		st, _ := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--", "cmd", "internal", "go.mod").Output()
		if changed := strings.Fields(string(st)); len(changed) > 0 {
			var files []string
			for i := 1; i < len(changed); i += 2 {
				files = append(files, changed[i])
			}
			source += " with uncommitted changes to " + strings.Join(files, ", ")
		}
	}
	return bin, source, nil
}

// startPglink runs `pglink serve` on dataDir, its log in logFile, and waits until /healthz
// answers 200.
// With profileDir set it runs this program in profiledServe mode instead of bin. loops is its
// --event-loops (0: the default).
func startPglink(ctx context.Context, bin, dataDir, logFile, endpointNet, profileDir string, loops int) (*pglinkProc, *bootstrap, error) {
	listen, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	dns, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, nil, err
	}
	defer lf.Close() // the child has its own descriptor
	// The gateway runs in serve's process, whose CPU time the bench measures.
	args := []string{"serve", "--data-dir", dataDir, "--listen", listen, "--endpoint-network", endpointNet, "--dns-listen", dns, "--gateway", "embedded",
		"--event-loops", strconv.Itoa(loops)}
	if profileDir != "" {
		if bin, err = os.Executable(); err != nil {
			return nil, nil, err
		}
		args = append([]string{profiledServe, "-cpuprofile", profileDir}, args[1:]...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	c, err := startChild("pglink", cmd)
	if err != nil {
		return nil, nil, err
	}
	p := &pglinkProc{child: c, bin: bin, dataDir: dataDir, logFile: logFile}

	deadline := time.Now().Add(90 * time.Second)
	var boot *bootstrap
	var hc *http.Client
	for {
		if p.exited() {
			return p, nil, fmt.Errorf("pglink exited during start: %v\n%s", p.err, tail(logFile, 30))
		}
		if time.Now().After(deadline) {
			return p, nil, fmt.Errorf("pglink not healthy after 90s\n%s", tail(logFile, 30))
		}
		if boot == nil {
			if b, err := readBootstrap(filepath.Join(dataDir, "bootstrap.json")); err == nil {
				boot = b
				if hc, err = httpClient(boot.CACertFile); err != nil {
					return p, nil, err
				}
			}
		}
		if hc != nil {
			if resp, err := hc.Get("https://" + listen + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return p, boot, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return p, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readBootstrap(path string) (*bootstrap, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var boot bootstrap
	if err := json.Unmarshal(b, &boot); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if boot.ARMEndpoint == "" || boot.CACertFile == "" {
		return nil, fmt.Errorf("%s: incomplete", path)
	}
	return &boot, nil
}

// rss returns the process's resident set size (VmRSS) in KiB.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + path + " (last lines) ---\n" + strings.Join(lines, "\n")
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func httpClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16},
	}, nil
}

// armClient calls pglink's ARM API as the bootstrap service principal.
type armClient struct {
	http  *http.Client
	base  string // armEndpoint
	token string
	sub   string // /subscriptions/{id}
}

func newARMClient(ctx context.Context, boot *bootstrap) (*armClient, error) {
	hc, err := httpClient(boot.CACertFile)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {boot.ClientID},
		"client_secret": {boot.ClientSecret},
		"scope":         {boot.ARMEndpoint + "/.default"},
	}
	req, err := http.NewRequestWithContext(ctx, "POST", boot.AuthorityHost+"/"+boot.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("token: status %d %v", resp.StatusCode, err)
	}
	return &armClient{http: hc, base: boot.ARMEndpoint, token: tok.AccessToken, sub: "/subscriptions/" + boot.SubscriptionID}, nil
}

// armError is an ARM error response.
type armError struct {
	method, path string
	status       int
	body         string
}

func (e *armError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// do sends one request and returns the status, headers and body; it does not follow
// long-running operations.
func (a *armClient) do(ctx context.Context, method, path string, body any) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = a.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// call sends a request and, if the answer is 202, polls its operation until it ends. It
// returns the final resource body (GET after a PUT that went asynchronous, nil after a DELETE
// or POST) or an error for any failure.
func (a *armClient) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	status, h, b, err := a.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusAccepted:
		if err := a.wait(ctx, method, path, h); err != nil {
			return nil, err
		}
		if method == http.MethodPut || method == http.MethodPatch {
			return a.call(ctx, http.MethodGet, path, nil)
		}
		return nil, nil
	case status >= 200 && status < 300:
		return b, nil
	default:
		return nil, &armError{method, path, status, string(b)}
	}
}

// wait polls the Azure-AsyncOperation (or Location) URL of a 202 until the operation ends.
func (a *armClient) wait(ctx context.Context, method, path string, h http.Header) error {
	op := h.Get("Azure-AsyncOperation")
	if op == "" {
		op = h.Get("Location")
	}
	if op == "" {
		return fmt.Errorf("%s %s: 202 without Azure-AsyncOperation or Location", method, path)
	}
	for {
		status, _, b, err := a.do(ctx, http.MethodGet, op, nil)
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
		}
		json.Unmarshal(b, &st)
		switch {
		case status >= 300:
			return &armError{"GET", op, status, string(b)}
		case st.Status == "Succeeded", st.Status == "" && status == http.StatusOK:
			return nil
		case st.Status == "Failed" || st.Status == "Canceled":
			return fmt.Errorf("%s %s: operation %s: %s", method, path, st.Status, b)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// field reads a string at a dotted path of a JSON document ("properties.dataPlane.address").
func field(doc []byte, path string) string {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return ""
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

var errNoSocket = errors.New("no unix socket found")
