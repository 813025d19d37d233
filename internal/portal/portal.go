// Package portal serves pglink's web portal: static HTML, CSS and JavaScript modules embedded
// in the binary. The portal is a public client of the identity provider (authorization code
// with PKCE, in the browser) and calls only the public ARM and identity admin APIs with the
// signed-in user's token, so RBAC applies to it exactly as to any other client.
package portal

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every portal response: scripts, styles and API calls
// from this origin only, no inline script, no frames, forms posting only here.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler returns the portal: GET / is the page, GET /portal/{file} its assets. Other paths
// answer 404, so the handler may be mounted at exactly those two patterns beside others.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static") // the directory is embedded above
	return &handler{files: sub}
}

type handler struct {
	files fs.FS
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := "index.html"
	if r.URL.Path != "/" {
		rest, ok := strings.CutPrefix(r.URL.Path, "/portal/")
		if !ok || rest == "" || strings.Contains(rest, "..") {
			http.NotFound(w, r)
			return
		}
		name = path.Clean(rest)
	}
	data, err := fs.ReadFile(h.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Type", contentType(name))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(data)
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
