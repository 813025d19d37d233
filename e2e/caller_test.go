package e2e

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/store"
)

// TestActivityLogNamesUsers: a user's writes, allowed and refused, are in the activity log
// under the user's UPN (a service principal's under its app id: TestSeparationOfDuties).
func TestActivityLogNamesUsers(t *testing.T) {
	in := start(t, nil)
	admin := in.adminCLI(t)
	sub := "/subscriptions/" + in.boot.SubscriptionID
	admin.ok(nil, "group", "create", "-n", "ug", "-l", "eastus")
	admin.ok(nil, "ad", "user", "create", "--display-name", "Dana", "--password", "Dana-pass-1", "--user-principal-name", "Dana@pglink.local")
	admin.ok(nil, "role", "assignment", "create", "--assignee", "dana@pglink.local", "--role", "Contributor", "--scope", sub+"/resourceGroups/ug")

	resp, err := in.httpClient().PostForm(in.boot.AuthorityHost+"/"+in.boot.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"password"}, "client_id": {"pglink-cli"}, "username": {"dana@pglink.local"}, "password": {"Dana-pass-1"},
		"scope": {in.boot.ARMEndpoint + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("password grant: %d %v", resp.StatusCode, err)
	}
	group := map[string]any{"location": "eastus", "tags": map[string]string{"owner": "dana"}}
	if st, body := in.call(t, tok.AccessToken, "PUT", sub+"/resourceGroups/ug?api-version=2022-09-01", group); st != 200 {
		t.Fatalf("Dana updates her group: %d %s", st, body)
	}
	if st, body := in.call(t, tok.AccessToken, "PUT", sub+"/resourceGroups/not-hers?api-version=2022-09-01", group); st != 403 {
		t.Fatalf("Dana creates another group: %d %s; want 403", st, body)
	}
	evs, err := in.srv.Store().Events(t.Context(), store.EventQuery{Subscription: in.boot.SubscriptionID, Caller: "dana@pglink.local"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range evs {
		var body struct {
			Caller     string
			ResourceID string `json:"resourceId"`
			Status     struct{ Value string }
		}
		if err := json.Unmarshal(e.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Caller != "dana@pglink.local" {
			t.Errorf("event caller = %q; want the UPN dana@pglink.local", body.Caller)
		}
		got[strings.ToLower(body.ResourceID[strings.LastIndex(body.ResourceID, "/")+1:])+" "+body.Status.Value] = true
	}
	for _, want := range []string{"ug Succeeded", "not-hers Failed"} {
		if !got[want] {
			t.Errorf("Dana's events = %v; want %q", got, want)
		}
	}
}
