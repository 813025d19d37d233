package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pglink/pglink/internal/server"
	"github.com/pglink/pglink/internal/store"
)

// The portal's browser tests drive Debian's Chromium, headless, with chromedp against a
// pglink started with --demo (records engine): a network administrator's Pending private
// endpoint connection on orders-db waits for the database administrator.

// browser is one headless Chromium session of a test, saving a screenshot of each step.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the portal's URL, with a trailing slash
	dir  string // where screenshots go
	step int
}

// chromium returns the path of Debian's Chromium, or ends the test (missingPart).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return requireTool(t, "chromium")
}

// artifactDir is where a test's screenshots go: $PGLINK_ARTIFACTS/<test> if set, else a
// temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("PGLINK_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts Chromium at 1280×800 for the instance's portal; it ends with the test.
func newBrowser(t *testing.T, in *instance) *browser {
	t.Helper()
	// The profile is removed by this test's own cleanup, after the browser: Chromium's helper
	// processes may still write to it for a moment after the browser exits, which would fail
	// t.TempDir's cleanup.
	profile, err := os.MkdirTemp("", "pglink-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
		// The instance's certificate is issued by its own CA, which this profile does not know.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp v0.14 logs the CDP events it does not know from newer Chromiums; drop those.
	logf := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled node event") {
			log.Print(msg)
		}
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(logf), chromedp.WithLogf(logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for i := 0; ; i++ {
			err := os.RemoveAll(profile)
			if err == nil || i == 50 {
				if err != nil {
					t.Logf("remove the browser profile %s: %v", profile, err)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The first Run starts the browser, which lives as long as the context it is given.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// No page of the portal or the identity provider may send a request off this machine: every
	// request the browser sends is to a loopback address (or a data: URL). Checked when the
	// test ends, before the browser stops (cleanups run last-registered first).
	var mu sync.Mutex
	var external []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && !loopbackURL(e.Request.URL) {
			mu.Lock()
			external = append(external, e.Request.URL)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(external) > 0 {
			t.Errorf("the browser sent requests off this machine: %q", external)
		}
	})
	b := &browser{t: t, ctx: ctx, base: in.boot.ARMEndpoint + "/", dir: artifactDir(t)}
	b.run(emulation.SetDeviceMetricsOverride(1280, 800, 1, false))
	t.Logf("screenshots in %s", b.dir)
	return b
}

// loopbackURL reports whether a request to raw stays on this machine: a data: or about: URL,
// or one whose host is a loopback address or localhost.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "about", "blob":
		return true
	case "http", "https", "ws", "wss":
		if u.Hostname() == "localhost" {
			return true
		}
		ip, err := netip.ParseAddr(u.Hostname())
		return err == nil && ip.IsLoopback()
	}
	return false
}

// run runs actions, failing the test if they fail or take over 30 seconds.
func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.shot("failure")
		b.t.Fatalf("browser: %v", err)
	}
}

// click clicks the element as a user would (a real mouse event at its position). The portal
// re-renders parts of the page on live updates, so an element found can be replaced before the
// click lands ("Could not find node"); the click is then retried on the new element.
func (b *browser) click(sel string) {
	b.t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		err := chromedp.Run(ctx, chromedp.Click(sel, chromedp.ByQuery))
		cancel()
		if err == nil {
			return
		}
		if attempt < 5 && (strings.Contains(err.Error(), "Could not find node") || strings.Contains(err.Error(), "not attached") ||
			strings.Contains(err.Error(), "No node with given id")) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b.shot("failure")
		b.t.Fatalf("browser: click %s: %v", sel, err)
	}
}

// shot saves a screenshot of the viewport as NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.step++
	var png []byte
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.step, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
	}
}

// eval returns the value of a JavaScript expression.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	b.run(chromedp.Evaluate(expr, out))
}

// waitFor waits until the JavaScript expression is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ok bool
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate("!!("+expr+")", &ok))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.shot("failure")
			var body string
			_ = chromedp.Run(b.ctx, chromedp.Evaluate(`document.body.innerText`, &body))
			b.t.Fatalf("waiting for %s: %v; page:\n%s", what, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits until the element sel exists and its text contains text.
func (b *browser) waitText(sel, text string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%s to show %q", sel, text),
		fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => e.innerText.includes(%q))`, sel, text))
}

// setValue sets the value of a form control as a user would change it (input and change events).
func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, sel, value), nil)
}

// signIn opens the portal, selects Sign in and signs in on the identity provider's page.
func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base), chromedp.WaitVisible(`#signin`, chromedp.ByQuery))
	b.shot("portal-sign-in")
	b.click(`#signin`)
	b.run(chromedp.WaitVisible(`#username`, chromedp.ByQuery))
	b.run(chromedp.SendKeys(`#username`, user, chromedp.ByQuery), chromedp.SendKeys(`#password`, password, chromedp.ByQuery))
	b.shot("identity-sign-in")
	b.click(`button[type=submit]`)
	b.waitText(`#identity`, user)
	b.shot("signed-in")
}

// openServer selects the server in the resource list and its Overview.
func (b *browser) openServer(name string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base + "#/"))
	b.waitFor("the server link", fmt.Sprintf(`[...document.querySelectorAll('main a')].some(a => a.textContent === %q)`, name))
	b.shot("resources")
	b.eval(fmt.Sprintf(`[...document.querySelectorAll('main a')].find(a => a.textContent === %q).click()`, name), nil)
	b.waitText(`#view-title`, name)
	b.click(`#menu-overview`)
	b.waitText(`#overview-title`, "Overview")
}

// demoUser returns the password of a --demo user.
func demoUser(t *testing.T, in *instance, username string) string {
	t.Helper()
	if in.boot.Demo == nil {
		t.Fatal("bootstrap has no demo")
	}
	for _, u := range in.boot.Demo.Users {
		if u.Username == username {
			return u.Password
		}
	}
	t.Fatalf("no demo user %s", username)
	return ""
}

func startDemo(t *testing.T) *instance {
	t.Helper()
	return start(t, func(c *server.Config) { c.Demo = true })
}

// connectionState returns the status and description of the connection whose name starts
// with prefix, read with the Azure SDK as the administrator.
func connectionState(t *testing.T, c *clients, prefix string) (status, description string, found bool) {
	t.Helper()
	pager := c.conns.NewListByServerPager("db-rg", "orders-db", nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list connections: %v", err)
		}
		for _, pec := range page.Value {
			if strings.HasPrefix(*pec.Name, prefix) {
				st := pec.Properties.PrivateLinkServiceConnectionState
				return string(*st.Status), *st.Description, true
			}
		}
	}
	return "", "", false
}

// selectConnection ticks the row checkbox of the connection whose name starts with prefix.
func (b *browser) selectConnection(prefix string) {
	b.t.Helper()
	sel := fmt.Sprintf(`input[data-connection^=%q]`, prefix)
	b.waitFor("connection "+prefix, fmt.Sprintf(`document.querySelector(%q)`, sel))
	b.click(sel)
	b.waitFor("the row selected", fmt.Sprintf(`document.querySelector(%q).checked`, sel))
}

// confirm types description into the open dialog's Description box (if given) and confirms.
func (b *browser) confirm(description string) {
	b.t.Helper()
	b.waitFor("the dialog", `document.getElementById('dialog').open`)
	if description != "" {
		b.run(chromedp.SendKeys(`#dialog-description`, description, chromedp.ByQuery))
	}
	b.shot("dialog")
	b.click(`#dialog-confirm`)
	b.waitFor("the dialog to close", `!document.getElementById('dialog').open`)
}

// TestPortalApproveConnection walks the seed's Portal steps as written.
func TestPortalApproveConnection(t *testing.T) {
	in := startDemo(t)
	c := newClients(t, in)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))

	// The resource list: every kind with its state.
	b.run(chromedp.Navigate(b.base + "#/"))
	for _, want := range []string{"Subscriptions", "Resource groups", "db-rg", "net-rg", "flexible servers", "Ready",
		"Virtual networks", "app-vnet", "10.0.0.0/16", "orders-app-pe", "Pending"} {
		b.waitText(`main`, want)
	}
	var wide bool
	b.eval(`document.documentElement.scrollWidth <= window.innerWidth`, &wide)
	if !wide {
		t.Error("the resource list overflows a 1280×800 window")
	}

	// 1–3. Select the server; Overview shows its status, Ready, so Networking is enabled.
	b.openServer("orders-db")
	b.waitText(`#server-status`, "Ready")
	srv, err := c.servers.Get(ctxT(t), "db-rg", "orders-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"orders-db.postgres.database.azure.com", "pgadmin", string(*srv.Properties.Version)} {
		b.waitText(`dl.essentials`, want)
	}
	var disabled bool
	b.eval(`document.getElementById('menu-networking').disabled`, &disabled)
	if disabled {
		t.Fatal("Networking is disabled for a Ready server")
	}
	b.shot("overview-ready")

	// 5–6. Networking lists the Pending connection; select it.
	b.click(`#menu-networking`)
	b.waitText(`#connections-title`, "Private endpoint connections")
	b.waitText(`tr[data-connection^="orders-app-pe."] .conn-state`, "Pending")
	b.waitText(`tr[data-connection^="orders-app-pe."]`, "Orders app in app-vnet asks for access") // the request message
	b.waitText(`tr[data-connection^="orders-app-pe."]`, "app-vnet / pe")                          // its network
	b.shot("networking-pending")
	b.selectConnection("orders-app-pe.")
	b.shot("pending-selected")

	// 7–8. Approve, type a Description, confirm.
	b.click(`#connection-approve`)
	b.waitText(`#dialog-title`, "Approve")
	const why = "Approved for the orders app"
	b.confirm(why)

	// 9–10. Notifications: being approved, then approved.
	b.waitText(`#notifications [role=status]`, "Approving private endpoint connection orders-app-pe.")
	b.shot("approving-notification")
	b.waitText(`#notifications [role=status]`, "Successfully approved private endpoint connection orders-app-pe.")
	b.waitText(`tr[data-connection^="orders-app-pe."] .conn-state`, "Approved")
	// The result takes the progress notification's place (after it has been seen for 3 s).
	b.waitFor("the progress notification to leave",
		`![...document.querySelectorAll('#notifications .note')].some(e => e.innerText.includes('Approving'))`)
	b.waitText(`tr[data-connection^="orders-app-pe."] .conn-description`, why)
	b.shot("approved-notification")

	status, desc, _ := connectionState(t, c, "orders-app-pe.")
	if status != "Approved" || desc != why {
		t.Errorf("connection after approval = %s %q; want Approved %q", status, desc, why)
	}

	// The activity log shows the approval, filtered by caller and resource. Two more events by
	// the same caller are planted for the filters to hide: one on another resource of the
	// server, and one on a connection three hours ago.
	plantEvent(t, in, in.boot.Demo.Server+"/firewallRules/other-rule-marker", time.Now())
	plantEvent(t, in, in.boot.Demo.Server+"/privateEndpointConnections/old-conn-marker", time.Now().Add(-3*time.Hour))
	b.run(chromedp.Navigate(b.base + "#/activity"))
	b.waitText(`#view-title`, "Activity log")
	b.waitText(`main table tbody`, "other-rule-marker")
	b.waitText(`main table tbody`, "old-conn-marker")
	b.run(chromedp.SendKeys(`#activity-caller`, "dba@", chromedp.ByQuery), chromedp.SendKeys(`#activity-resource`, "privateEndpointConnections", chromedp.ByQuery))
	b.waitText(`main table tbody`, "dba@pglink.local")
	var others int
	b.eval(`[...document.querySelectorAll('main table tbody tr')].filter(r => !r.innerText.includes('dba@pglink.local')).length`, &others)
	if others != 0 {
		t.Errorf("activity log filtered by caller dba@ shows %d rows of other callers", others)
	}
	b.waitFor("the resource filter to hide the firewall rule's event", `!document.querySelector('main table tbody').innerText.includes('other-rule-marker')`)
	b.waitText(`main table tbody`, "old-conn-marker")
	// The timespan reloads the log: the approval is within the last hour, the planted
	// connection event is not.
	b.setValue(`#activity-time`, "1")
	b.waitFor("the timespan to hide the event of three hours ago", `!document.querySelector('main table tbody').innerText.includes('old-conn-marker')`)
	b.waitText(`main table tbody`, "orders-app-pe.")
	b.shot("activity-log")

	// Sign out: the portal forgets the session and offers Sign in again, and the session's
	// tokens stop working at the identity provider.
	var session struct{ AccessToken, RefreshToken string }
	var raw string
	b.eval(`sessionStorage.getItem('pglink.session') || ''`, &raw)
	if err := json.Unmarshal([]byte(raw), &session); err != nil || session.RefreshToken == "" || session.AccessToken == "" {
		t.Fatalf("the portal's session before sign-out = %q, %v; want its tokens", raw, err)
	}
	b.click(`#signout`)
	b.run(chromedp.WaitVisible(`#signin`, chromedp.ByQuery))
	b.shot("signed-out")
	if r := in.do(t, "GET", "/subscriptions?api-version=2021-04-01", session.AccessToken, nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("the signed-out session's access token: %d; want 401", r.status)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"c44b4083-3bb0-49c1-b47d-974e53cbdf3c"},
		"refresh_token": {session.RefreshToken}, "scope": {in.boot.ARMEndpoint + "/.default"}}
	resp, err := in.httpClient().PostForm(in.boot.ARMEndpoint+"/"+in.boot.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_grant") {
		t.Errorf("refresh with the signed-out session's token: %d %s; want 400 invalid_grant", resp.StatusCode, body)
	}
}

// plantEvent appends to the activity log a copy of dba@pglink.local's latest event, about
// resourceID at the time at.
func plantEvent(t *testing.T, in *instance, resourceID string, at time.Time) {
	t.Helper()
	st := in.srv.Store()
	evs, err := st.Events(t.Context(), store.EventQuery{Subscription: in.boot.SubscriptionID, Caller: "dba@pglink.local", Limit: 1})
	if err != nil || len(evs) == 0 {
		t.Fatalf("dba@pglink.local's latest event: %v (%d events)", err, len(evs))
	}
	var body map[string]any
	if err := json.Unmarshal(evs[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	stamp := at.UTC().Format(time.RFC3339Nano)
	body["resourceId"], body["eventTimestamp"], body["submissionTimestamp"] = resourceID, stamp, stamp
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	e.Seq, e.Time, e.ResourceID, e.Body = 0, at, resourceID, raw
	if err := st.Update(t.Context(), func(tx store.Tx) error { return tx.AppendEvent(t.Context(), e) }); err != nil {
		t.Fatalf("plant an event: %v", err)
	}
}

// TestPortalNetworkingDisabledWhenStopped: step 4 of the seed.
func TestPortalNetworkingDisabledWhenStopped(t *testing.T) {
	in := startDemo(t)
	c := newClients(t, in)
	poller, err := c.servers.BeginStop(ctxT(t), "db-rg", "orders-db", nil)
	if err != nil {
		t.Fatalf("stop server: %v", err)
	}
	if _, err := poller.PollUntilDone(ctxT(t), &azcoreFast); err != nil {
		t.Fatalf("stop server: %v", err)
	}
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.waitText(`#server-status`, "Stopped")
	b.waitFor("Networking disabled", `document.getElementById('menu-networking').disabled`)
	b.waitText(`#menu-networking-why`, "only when the server's status is Ready")
	b.shot("networking-disabled")

	// Start it from the Overview: Networking is enabled once it is Ready.
	b.click(`#server-start`)
	b.waitText(`#notifications [role=status]`, "Successfully started server orders-db.")
	b.waitText(`#server-status`, "Ready")
	b.waitFor("Networking enabled", `!document.getElementById('menu-networking').disabled`)
	b.shot("started")

	// Restart, then Stop, from the Overview.
	b.click(`#server-restart`)
	b.waitText(`#notifications [role=status]`, "Successfully restarted server orders-db.")
	b.waitText(`#server-status`, "Ready")
	b.shot("restarted")
	b.click(`#server-stop`)
	b.waitText(`#notifications [role=status]`, "Successfully stopped server orders-db.")
	b.waitText(`#server-status`, "Stopped")
	b.waitFor("Networking disabled again", `document.getElementById('menu-networking').disabled`)
	b.shot("stopped")
}

// TestPortalNetworkAdminCannotApprove: the network administrator sees the connection and the
// reason Approve is disabled, and sees it in the network view, where it may create endpoints.
func TestPortalNetworkAdminCannotApprove(t *testing.T) {
	in := startDemo(t)
	b := newBrowser(t, in)
	b.signIn("netadmin@pglink.local", demoUser(t, in, "netadmin@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.selectConnection("orders-app-pe.")
	b.waitFor("Approve disabled", `document.getElementById('connection-approve').disabled`)
	b.waitText(`#connection-approve-why`, "privateEndpointConnectionsApproval/action")
	b.waitFor("Remove disabled", `document.getElementById('connection-remove').disabled`)
	b.waitFor("firewall rules read-only", `document.getElementById('rule-save').disabled`)
	b.shot("approve-disabled")

	// The network view: vnets and subnets, the endpoint Pending; a second endpoint, manual.
	b.run(chromedp.Navigate(b.base + "#/network"))
	b.waitText(`main`, "app-vnet")
	b.waitText(`main`, "10.0.1.0/24")
	b.waitText(`main table`, "orders-app-pe")
	b.waitFor("Create enabled", `document.getElementById('pe-create') && !document.getElementById('pe-create').disabled`)
	b.shot("network-view")
	b.setValue(`#pe-group`, "net-rg")
	b.run(chromedp.SendKeys(`#pe-name`, "reports-pe", chromedp.ByQuery),
		chromedp.SendKeys(`#pe-target`, in.boot.Demo.Server, chromedp.ByQuery),
		chromedp.SendKeys(`#pe-message`, "reports job", chromedp.ByQuery))
	b.shot("create-endpoint")
	b.click(`#pe-create`)
	b.waitText(`#notifications [role=status]`, "Successfully created private endpoint reports-pe")
	b.waitText(`main table`, "reports job")
	b.shot("endpoint-created")
	if _, _, ok := connectionState(t, newClients(t, in), "reports-pe."); !ok {
		t.Error("no connection from reports-pe on orders-db")
	}
}

// TestPortalRejectAndRemove rejects the Pending connection with a description, then removes
// it; the endpoint shows Disconnected in the network view.
func TestPortalRejectAndRemove(t *testing.T) {
	in := startDemo(t)
	c := newClients(t, in)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.selectConnection("orders-app-pe.")
	b.click(`#connection-reject`)
	b.confirm("not this vnet")
	b.waitText(`#notifications [role=status]`, "Rejecting private endpoint connection orders-app-pe.")
	b.waitText(`#notifications [role=status]`, "Successfully rejected private endpoint connection orders-app-pe.")
	b.waitText(`tr[data-connection^="orders-app-pe."] .conn-state`, "Rejected")
	b.shot("rejected")
	if status, desc, _ := connectionState(t, c, "orders-app-pe."); status != "Rejected" || desc != "not this vnet" {
		t.Errorf("connection after rejection = %s %q; want Rejected %q", status, desc, "not this vnet")
	}

	b.selectConnection("orders-app-pe.")
	b.click(`#connection-remove`)
	b.confirm("vnet retired — döne")
	b.waitText(`#notifications [role=status]`, "Successfully removed private endpoint connection orders-app-pe.")
	b.waitFor("the row gone", `!document.querySelector('tr[data-connection^="orders-app-pe."]')`)
	b.shot("removed")
	if _, _, ok := connectionState(t, c, "orders-app-pe."); ok {
		t.Error("the connection is still there after Remove")
	}
	b.run(chromedp.Navigate(b.base + "#/network"))
	b.waitText(`main table`, "Disconnected")
	b.shot("endpoint-disconnected")
	// The Description typed for Remove is in the activity log with the delete.
	evs, err := in.srv.Store().Events(t.Context(), store.EventQuery{Subscription: in.boot.SubscriptionID, Caller: "dba@pglink.local"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		var body struct {
			Description   string
			OperationName struct{ Value string }
		}
		if json.Unmarshal(e.Body, &body) == nil && strings.HasSuffix(body.OperationName.Value, "privateEndpointConnections/delete") &&
			body.Description == "vnet retired — döne" {
			found = true
		}
	}
	if !found {
		t.Errorf("no privateEndpointConnections/delete event by dba@pglink.local with the Remove dialog's description")
	}
}

// TestPortalBulkApprove: connections made elsewhere show without a reload; several approved
// with one description.
func TestPortalBulkApprove(t *testing.T) {
	in := startDemo(t)
	c := newClients(t, in)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.waitText(`tr[data-connection^="orders-app-pe."] .conn-state`, "Pending")

	subnet := in.boot.Demo.PrivateEndpoint[:strings.Index(in.boot.Demo.PrivateEndpoint, "/providers/")] +
		"/providers/Microsoft.Network/virtualNetworks/app-vnet/subnets/pe"
	for _, name := range []string{"batch-pe", "bi-pe"} {
		if _, err := c.endpoint(t, "net-rg", name, subnet, in.boot.Demo.Server, true, "from "+name); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	// Live update: the new connections show without a reload.
	b.waitFor("the new connections", `document.querySelectorAll('tr[data-connection]').length === 3`)
	b.shot("new-connections")

	b.click(`#select-all`)
	b.waitFor("all selected", `[...document.querySelectorAll('input[data-connection]')].every(x => x.checked)`)
	b.click(`#connection-approve`)
	b.waitText(`#dialog-text`, "connections")
	const why = "quarterly access review"
	b.confirm(why)
	for _, p := range []string{"orders-app-pe.", "batch-pe.", "bi-pe."} {
		b.waitText(`#notifications [role=status]`, "Successfully approved private endpoint connection "+p)
	}
	b.waitFor("all Approved", `[...document.querySelectorAll('tr[data-connection] .conn-state')].every(x => x.innerText === 'Approved')`)
	b.shot("bulk-approved")
	for _, p := range []string{"orders-app-pe.", "batch-pe.", "bi-pe."} {
		if status, desc, _ := connectionState(t, c, p); status != "Approved" || desc != why {
			t.Errorf("connection %s* = %s %q; want Approved %q", p, status, desc, why)
		}
	}
}

// TestPortalAccessibility: the dialog keeps focus and gives it back, every control has a name,
// and the page fits a narrow window.
func TestPortalAccessibility(t *testing.T) {
	in := startDemo(t)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.selectConnection("orders-app-pe.")

	// Keyboard: focus Approve, open the dialog with Enter; Tab stays inside; Escape closes it
	// and focus returns to Approve.
	b.run(chromedp.Focus(`#connection-approve`, chromedp.ByQuery), chromedp.KeyEvent("\r"))
	b.waitFor("the dialog", `document.getElementById('dialog').open`)
	b.waitFor("focus in the Description box", `document.activeElement.id === 'dialog-description'`)
	for i := 0; i < 6; i++ {
		b.run(chromedp.KeyEvent("\t"))
		var inside bool
		b.eval(`document.getElementById('dialog').contains(document.activeElement)`, &inside)
		if !inside {
			t.Fatalf("Tab %d moved focus out of the dialog", i+1)
		}
	}
	b.shot("dialog-focus")
	b.run(chromedp.KeyEvent("\x1b"))
	b.waitFor("the dialog closed", `!document.getElementById('dialog').open`)
	b.waitFor("focus back on Approve", `document.activeElement.id === 'connection-approve'`)

	// Every form control has a label or an accessible name.
	var unnamed []string
	b.eval(`[...document.querySelectorAll('input, select, textarea, button')].filter(e => e.offsetParent !== null &&
		!(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML)`, &unnamed)
	if len(unnamed) > 0 {
		t.Errorf("controls without a name: %v", unnamed)
	}

	// A narrow window: nothing wider than the viewport.
	b.run(emulation.SetDeviceMetricsOverride(400, 800, 1, true))
	b.run(chromedp.Reload())
	b.waitText(`#connections-title`, "Private endpoint connections")
	// Nothing sticks out of the window but wide tables, which scroll in their own box.
	var wide []string
	b.eval(`[...document.querySelectorAll('body *')].filter(e => !e.closest('.table-wrap') && e.offsetParent !== null &&
		e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '#' + e.id + ' ' + e.textContent.slice(0, 40))`, &wide)
	if len(wide) > 0 {
		t.Errorf("in a 400px window these stick out: %q", wide)
	}
	b.shot("narrow-networking")
}

// TestPortalApproveServerNotReady: the server stops while the Approve dialog is open; the
// approval fails with the API's ServerIsNotReady, shown as an alert.
func TestPortalApproveServerNotReady(t *testing.T) {
	in := startDemo(t)
	c := newClients(t, in)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.selectConnection("orders-app-pe.")
	b.click(`#connection-approve`)
	b.waitFor("the dialog", `document.getElementById('dialog').open`)
	poller, err := c.servers.BeginStop(ctxT(t), "db-rg", "orders-db", nil)
	if err != nil {
		t.Fatalf("stop server: %v", err)
	}
	if _, err := poller.PollUntilDone(ctxT(t), &azcoreFast); err != nil {
		t.Fatalf("stop server: %v", err)
	}
	b.confirm("too late")
	b.waitText(`#notifications [role=status]`, "Approving private endpoint connection orders-app-pe.")
	b.waitText(`#notifications [role=alert]`, "ServerIsNotReady")
	b.shot("server-not-ready")
	// The page follows: Networking is disabled now.
	b.waitFor("Networking disabled", `document.getElementById('menu-networking').disabled`)
	if status, _, _ := connectionState(t, c, "orders-app-pe."); status != "Pending" {
		t.Errorf("connection = %s; want Pending still", status)
	}
}

// TestPortalFirewallAndPublicAccess adds, edits and deletes a firewall rule and turns public
// access off.
func TestPortalFirewallAndPublicAccess(t *testing.T) {
	in := startDemo(t)
	c := newClients(t, in)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.waitText(`#firewall-title`, "Firewall rules")

	b.run(chromedp.SendKeys(`#rule-name`, "office", chromedp.ByQuery), chromedp.SendKeys(`#rule-start`, "203.0.113.1", chromedp.ByQuery),
		chromedp.SendKeys(`#rule-end`, "203.0.113.9", chromedp.ByQuery))
	b.shot("rule-typed")
	b.click(`#rule-save`)
	b.waitText(`#notifications [role=status]`, "Successfully added firewall rule office.")
	b.waitText(`main table`, "203.0.113.9")
	b.shot("rule-added")

	b.click(`#rule-edit-office`)
	b.waitFor("the rule in the form", `document.getElementById('rule-end').value === '203.0.113.9'`)
	b.setValue(`#rule-end`, "")
	b.run(chromedp.SendKeys(`#rule-end`, "203.0.113.20", chromedp.ByQuery))
	b.click(`#rule-save`)
	b.waitText(`#notifications [role=status]`, "Successfully saved firewall rule office.")
	b.waitText(`main table`, "203.0.113.20")
	rule, err := c.rules.Get(ctxT(t), "db-rg", "orders-db", "office", nil)
	if err != nil {
		t.Fatalf("get rule: %v", err)
	}
	if got := *rule.Properties.EndIPAddress; got != "203.0.113.20" {
		t.Errorf("rule end = %s; want 203.0.113.20", got)
	}

	b.click(`#rule-delete-office`)
	b.confirm("")
	b.waitText(`#notifications [role=status]`, "Successfully deleted firewall rule office.")
	b.waitFor("the rule gone", `!document.getElementById('rule-edit-office')`)
	b.shot("rule-deleted")

	b.click(`#public-access`)
	b.waitText(`#notifications [role=status]`, "Successfully disabled public access to orders-db.")
	srv, err := c.servers.Get(ctxT(t), "db-rg", "orders-db", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(*srv.Properties.Network.PublicNetworkAccess); got != "Disabled" {
		t.Errorf("public network access = %s; want Disabled", got)
	}
	b.shot("public-access-off")
}

// TestPortalServedBesideIssuer: the portal owns GET / and /portal/…, the identity provider keeps
// its routes on the same listener.
func TestPortalServedBesideIssuer(t *testing.T) {
	in := start(t, nil)
	hc := in.httpClient()
	for _, tc := range []struct {
		path   string
		status int
		csp    bool
	}{
		{"/", 200, true},
		{"/portal/app.js", 200, true},
		{"/" + in.boot.TenantID + "/v2.0/.well-known/openid-configuration", 200, false},
		{"/" + in.boot.TenantID + "/discovery/v2.0/keys", 200, false},
		{"/healthz", 200, false},
	} {
		resp, err := hc.Get(in.boot.ARMEndpoint + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s = %d; want %d", tc.path, resp.StatusCode, tc.status)
		}
		if got := strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'"); got != tc.csp {
			t.Errorf("GET %s: portal CSP %v; want %v", tc.path, got, tc.csp)
		}
	}
}

// TestPortalPermissionMatcher checks the portal's Azure action matcher (perms.js) in the
// browser against Azure's wildcard rules.
func TestPortalPermissionMatcher(t *testing.T) {
	in := start(t, nil)
	b := newBrowser(t, in)
	b.run(chromedp.Navigate(b.base), chromedp.WaitVisible(`#signin`, chromedp.ByQuery))
	const approve = "Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action"
	for _, tc := range []struct {
		perms  string
		action string
		want   bool
	}{
		{`[{"actions":["*"]}]`, approve, true},
		{`[{"actions":["*/read"]}]`, approve, false},
		{`[{"actions":["*/read"]}]`, "Microsoft.DBforPostgreSQL/flexibleServers/read", true},
		{`[{"actions":["Microsoft.DBforPostgreSQL/*"]}]`, approve, true},
		{`[{"actions":["microsoft.dbforpostgresql/*"]}]`, approve, true}, // case-insensitive
		{`[{"actions":["Microsoft.Network/*"]}]`, approve, false},
		{`[{"actions":["*"],"notActions":["Microsoft.DBforPostgreSQL/*/action"]}]`, approve, false},
		// notActions subtract from their own entry only: another role may grant it.
		{`[{"actions":["*"],"notActions":["Microsoft.DBforPostgreSQL/*"]},{"actions":["` + approve + `"]}]`, approve, true},
		{`[{"actions":["Microsoft.DBforPostgreSQL/flexibleServers.read"]}]`, "Microsoft.DBforPostgreSQL/flexibleServersXread", false}, // '.' is literal
		{`[]`, approve, false},
	} {
		var got bool
		expr := fmt.Sprintf(`import('/portal/perms.js').then(m => m.can(%s, %q))`, tc.perms, tc.action)
		b.run(chromedp.Evaluate(expr, &got, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if got != tc.want {
			t.Errorf("can(%s, %q) = %v; want %v", tc.perms, tc.action, got, tc.want)
		}
	}
}

// TestPortalSession: an expired access token is refreshed with the refresh token, which
// rotates; a session ended elsewhere (the user's password reset) sends the portal back to
// Sign in.
func TestPortalSession(t *testing.T) {
	in := startDemo(t)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.waitFor("the resource list", `[...document.querySelectorAll('main a')].some(a => a.textContent === 'orders-db')`)
	var before string
	b.eval(`(() => { const s = JSON.parse(sessionStorage.getItem('pglink.session')); s.expiresAt = 0;
		sessionStorage.setItem('pglink.session', JSON.stringify(s)); return s.refreshToken })()`, &before)
	b.run(chromedp.Reload())
	b.waitFor("the resource list again", `[...document.querySelectorAll('main a')].some(a => a.textContent === 'orders-db')`)
	var after string
	b.eval(`JSON.parse(sessionStorage.getItem('pglink.session')).refreshToken`, &after)
	if after == "" || after == before {
		t.Errorf("refresh token after an expired access token: rotated %v", after != before)
	}

	// The administrator resets the user's password: the session ends, the next poll finds out.
	in.adminCLI(t).ok(nil, "ad", "user", "update", "--id", "dba@pglink.local", "--password", "Pg1-"+strings.Repeat("x", 12))
	b.waitFor("Sign in again", `document.getElementById('signin')`)
	b.waitText(`main`, "Sign in again")
	b.shot("session-ended")
}

// TestPortalLocalEngine: with real PostgreSQL servers the Overview shows the data-plane
// address, and approval runs as a long-running operation against the gateway's policy.
func TestPortalLocalEngine(t *testing.T) {
	requirePGTool(t, "initdb")
	dir := traversableDir(t)
	in := start(t, func(c *server.Config) {
		c.Engine = "local"
		c.DataDir = dir
		c.EndpointNetwork = fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(100), rand.IntN(250))
		c.Demo = true
	})
	c := newClients(t, in)
	addr := serverAddress(t, c, "db-rg", "orders-db")
	if addr == "" {
		t.Fatal("the demo server has no data-plane address")
	}
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.waitText(`#server-status`, "Ready")
	b.waitText(`dl.essentials`, addr)
	b.shot("overview-data-plane")
	b.click(`#menu-networking`)
	b.selectConnection("orders-app-pe.")
	b.click(`#connection-approve`)
	b.confirm("real servers too")
	b.waitText(`#notifications [role=status]`, "Successfully approved private endpoint connection orders-app-pe.")
	if status, desc, _ := connectionState(t, c, "orders-app-pe."); status != "Approved" || desc != "real servers too" {
		t.Errorf("connection = %s %q; want Approved %q", status, desc, "real servers too")
	}
	b.shot("approved")

	// A session through the endpoint shows in the table (live), and the Reject dialog says it
	// would cut it.
	db, err := connect(ctxT(t), peAddress(t, c, "net-rg", "orders-app-pe"), "", "require", in.boot.Demo.ServerAdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	b.waitFor("one open session", `[...document.querySelectorAll('tr[data-connection^="orders-app-pe."] td.conn-sessions')].some(td => td.textContent === '1')`)
	b.waitText(`#public-sessions`, "0 open sessions through the public endpoint")
	b.selectConnection("orders-app-pe.")
	b.click(`#connection-reject`)
	b.waitText(`#dialog-text`, "This cuts 1 open session through it.")
	b.shot("reject-cuts-session")
	b.click(`#dialog-cancel`)
	b.waitFor("the dialog to close", `!document.getElementById('dialog').open`)
	if err := selectOne(t, db); err != nil {
		t.Errorf("session after the cancelled rejection: %v", err)
	}
}

// TestPortalApproveAuthorizationFailed: the database administrator loses the role while the
// Approve dialog is open; the approval fails with the API's AuthorizationFailed, shown as an
// alert, and the buttons then show the missing permission.
func TestPortalApproveAuthorizationFailed(t *testing.T) {
	in := startDemo(t)
	b := newBrowser(t, in)
	b.signIn("dba@pglink.local", demoUser(t, in, "dba@pglink.local"))
	b.openServer("orders-db")
	b.click(`#menu-networking`)
	b.selectConnection("orders-app-pe.")
	b.click(`#connection-approve`)
	b.waitFor("the dialog", `document.getElementById('dialog').open`)
	in.adminCLI(t).ok(nil, "role", "assignment", "delete", "--assignee", "dba@pglink.local",
		"--role", "PostgreSQL Flexible Server Administrator", "--scope", "/subscriptions/"+in.boot.SubscriptionID)
	b.confirm("no longer mine to approve")
	b.waitText(`#notifications [role=alert]`, "AuthorizationFailed")
	b.shot("authorization-failed")
	b.waitFor("Approve disabled", `document.getElementById('connection-approve').disabled`)
	b.waitText(`#connection-approve-why`, "You do not have permission")
	if status, _, _ := connectionState(t, newClients(t, in), "orders-app-pe."); status != "Pending" {
		t.Errorf("connection = %s; want Pending still", status)
	}
}

// TestPortalNetworkDNS: the network view shows a private endpoint's DNS configuration and the
// private DNS zones' records, the A record a zone group wrote among them.
func TestPortalNetworkDNS(t *testing.T) {
	in := startDemo(t)
	d := newDNSClients(t, in)
	zone := d.zone(t, "net-rg", "privatelink.postgres.database.azure.com")
	if _, err := d.zoneGroup(t, "net-rg", "orders-app-pe", *zone.ID); err != nil {
		t.Fatalf("zone group: %v", err)
	}
	b := newBrowser(t, in)
	b.signIn("netadmin@pglink.local", demoUser(t, in, "netadmin@pglink.local"))
	b.run(chromedp.Navigate(b.base + "#/network"))
	b.waitText(`main`, "Private DNS zones and their records")
	b.waitText(`main`, "privatelink.postgres.database.azure.com")
	b.waitFor("the zone group's A record", `[...document.querySelectorAll('main table tr')].some(tr => tr.cells.length === 6 &&
		tr.cells[0].textContent === 'privatelink.postgres.database.azure.com' && tr.cells[2].textContent === 'orders-db' &&
		tr.cells[3].textContent === 'A' && tr.cells[5].textContent !== '')`)
	b.waitText(`main table`, "orders-db.postgres.database.azure.com →")
	b.shot("network-dns")
}
