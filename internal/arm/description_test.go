package arm

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestHeaderDescription(t *testing.T) {
	for _, tt := range []struct{ header, want string }{
		{"", ""},
		{url.PathEscape("vnet retired — döne"), "vnet retired — döne"},
		{"plain", "plain"},
		{url.PathEscape("line\nbreak"), ""},
		{url.PathEscape(strings.Repeat("é", 513)), ""},
		{url.PathEscape(strings.Repeat("é", 512)), strings.Repeat("é", 512)},
		{"%zz", ""},
		{"%ff%fe", ""},
	} {
		r := httptest.NewRequest("DELETE", "/x", nil)
		if tt.header != "" {
			r.Header.Set(DescriptionHeader, tt.header)
		}
		if got := headerDescription(r); got != tt.want {
			t.Errorf("headerDescription(%.30q) = %.30q; want %.30q", tt.header, got, tt.want)
		}
	}
}
