package postgresql

import (
	"slices"
	"strings"
	"testing"
)

func TestCatalogue(t *testing.T) {
	names := make([]string, len(catalogue))
	for i, p := range catalogue {
		names[i] = p.name
		if p.name != strings.ToLower(p.name) || p.description == "" || p.defaultValue == "" || p.dataType == "" || p.allowed == "" || !strings.HasPrefix(p.doc, "https://") {
			t.Errorf("catalogue entry %+v: want a lower-case name, a description, a default, a data type, allowed values and a documentation link", p)
		}
		if p.norm != nil {
			if got, ok := p.norm(p.defaultValue); !ok || got != p.defaultValue {
				t.Errorf("%s: norm(default %q) = %q, %v; want the default back", p.name, p.defaultValue, got, ok)
			}
		}
	}
	// The list is served in this order and paged by name.
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("catalogue names %v are not sorted and distinct", names)
	}
}

func TestParameterValues(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{ParamRequireSecureTransport, "on", "on", true},
		{ParamRequireSecureTransport, "OFF", "off", true},
		{ParamRequireSecureTransport, "true", "on", true},
		{ParamRequireSecureTransport, " 0 ", "off", true},
		{ParamRequireSecureTransport, "", "", false},
		{ParamRequireSecureTransport, "maybe", "", false},
		{ParamSSLMinProtocolVersion, "TLSv1.2", "TLSv1.2", true},
		{ParamSSLMinProtocolVersion, "tlsv1.3", "TLSv1.3", true},
		{ParamSSLMinProtocolVersion, "TLSv1.1", "", false}, // Azure and Go's server defaults stop at TLS 1.2
		{ParamSSLMinProtocolVersion, "TLSv1", "", false},
		{ParamSSLMinProtocolVersion, "1.3", "", false},
	} {
		p, ok := lookupParameter(strings.ToUpper(tc.name))
		if !ok {
			t.Fatalf("lookupParameter(%q) found nothing", strings.ToUpper(tc.name))
		}
		if got, ok := p.norm(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("%s: norm(%q) = %q, %v; want %q, %v", tc.name, tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := lookupParameter("no_such_parameter"); ok {
		t.Error(`lookupParameter("no_such_parameter") found something`)
	}
}
