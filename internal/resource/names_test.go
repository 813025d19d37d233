package resource

import (
	"strings"
	"testing"
)

func TestNameRules(t *testing.T) {
	for _, tc := range []struct {
		rule NameRule
		name string
		ok   bool
	}{
		{VirtualNetworkName, "vnet", true},
		{VirtualNetworkName, "my.vnet-1_", true},
		{VirtualNetworkName, "v", false}, // 2-64
		{VirtualNetworkName, strings.Repeat("v", 64), true},
		{VirtualNetworkName, strings.Repeat("v", 65), false},
		{VirtualNetworkName, strings.Repeat("v", 5000), false},
		{VirtualNetworkName, "-vnet", false},
		{VirtualNetworkName, "vnet-", false},
		{VirtualNetworkName, "vnet.", false},
		{VirtualNetworkName, "vnet_", true},
		{VirtualNetworkName, "v\x00net", false},
		{VirtualNetworkName, "v\nnet", false},
		{VirtualNetworkName, "vnet😀", false},
		{VirtualNetworkName, "vnét", false},
		{VirtualNetworkName, "my vnet", false},
		{VirtualNetworkName, "a/b", false},
		{SubnetName, "s", true}, // 1-80
		{SubnetName, "_", false},
		{SubnetName, "-", false},
		{SubnetName, strings.Repeat("s", 80), true},
		{SubnetName, strings.Repeat("s", 81), false},
		{PrivateEndpointName, "pe", true},
		{PrivateEndpointName, "p", false},
		{LinkConnectionName, "c", true},
		{ConnectionName, "pe-1.1fa229cd-bf3f-47f0-8c49-afb36723997e", true},
		{ConnectionName, "my_pe.1fa229cd-bf3f-47f0-8c49-afb36723997e", true},
		{ConnectionName, strings.Repeat("p", 64) + ".1fa229cd-bf3f-47f0-8c49-afb36723997e", true},
		{ConnectionName, strings.Repeat("p", 200), false},
		{ConnectionName, "pe.\x00", false},
	} {
		err := tc.rule.Check(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("%s rule: Check(%q) = %v; want ok=%v", tc.rule.What, tc.name, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		e, _ := AsError(err)
		if e == nil || e.Code != "InvalidResourceName" || e.Kind != Invalid {
			t.Errorf("Check(%q) = %v; want 400 InvalidResourceName", tc.name, err)
			continue
		}
		if !strings.Contains(e.Message, "characters long") || len(e.Message) > 600 || strings.ContainsRune(e.Message, 0) {
			t.Errorf("Check(%q) message = %q; want the rule, the name quoted short and escaped", tc.name, e.Message)
		}
	}
}

func TestQuoteName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"db1", "db1"},
		{"a\x00b", `a\u0000b`},
		{"a\xffb", `a\xffb`},
		{"😀", "😀"},
		{strings.Repeat("x", 81), strings.Repeat("x", 80) + "…"},
		{strings.Repeat("x", 80), strings.Repeat("x", 80)},
	} {
		if got := QuoteName(tc.in); got != tc.want {
			t.Errorf("QuoteName(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
