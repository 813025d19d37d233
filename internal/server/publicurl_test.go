package server

import "testing"

func TestPublicURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"https://pglink.example.com", "https://pglink.example.com"},
		{"https://pglink.example.com/", "https://pglink.example.com"},
		{"https://127.0.0.1:8443", "https://127.0.0.1:8443"},
	} {
		if got, err := publicURL(tt.in); err != nil || got != tt.want {
			t.Errorf("publicURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"http://pglink.example.com", "pglink.example.com", "https://", "https://h/path",
		"https://h?x=1", "https://u:p@h", "https://h#f"} {
		if got, err := publicURL(bad); err == nil {
			t.Errorf("publicURL(%q) = %q; want an error", bad, got)
		}
	}
}
