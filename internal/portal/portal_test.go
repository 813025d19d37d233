package portal

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		path       string
		status     int
		wantType   string
		wantInBody string
	}{
		{"/", 200, "text/html; charset=utf-8", `<script type="module" src="/portal/app.js">`},
		{"/portal/app.js", 200, "text/javascript; charset=utf-8", "import"},
		{"/portal/style.css", 200, "text/css; charset=utf-8", "body"},
		{"/portal/", 404, "", ""},
		{"/portal/missing.js", 404, "", ""},
		{"/portal/../portal.go", 404, "", ""},
		{"/portal/%2e%2e/portal.go", 404, "", ""},
		{"/index.html", 404, "", ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("GET %s = %d; want %d", tc.path, rec.Code, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tc.wantType {
			t.Errorf("GET %s: Content-Type = %q; want %q", tc.path, got, tc.wantType)
		}
		if got := rec.Header().Get("Content-Security-Policy"); got != CSP {
			t.Errorf("GET %s: Content-Security-Policy = %q; want %q", tc.path, got, CSP)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options = %q; want nosniff", tc.path, got)
		}
		if !strings.Contains(rec.Body.String(), tc.wantInBody) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.wantInBody)
		}
	}
}

// TestCSP: the policy allows this origin only and no inline script.
func TestCSP(t *testing.T) {
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(CSP, want) {
			t.Errorf("CSP %q lacks %q", CSP, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(CSP, bad) {
			t.Errorf("CSP %q has %q", CSP, bad)
		}
	}
}

// TestAssetsSelfContained: no asset names another origin, and the page has no inline script,
// style or event handler (the CSP would block them).
func TestAssetsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]|<style|\son[a-z]+=|style=`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "//") {
				continue // a comment
			}
			if m := external.FindString(line); m != "" && !strings.Contains(line, "location.origin") {
				t.Errorf("%s names another origin: %q in %q", path, m, strings.TrimSpace(line))
			}
		}
		if strings.HasSuffix(path, ".html") {
			if m := inline.FindString(string(data)); m != "" {
				t.Errorf("%s has inline code %q", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
