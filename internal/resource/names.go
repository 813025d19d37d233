package resource

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NameRule is Azure's naming rule of a resource type: a length range and the characters a name
// may start with, contain and end with. All characters are ASCII: a name with NUL, control
// characters, spaces, emoji or other non-ASCII characters breaks every rule.
type NameRule struct {
	What     string // the kind of resource, for messages, e.g. "virtual network"
	Min, Max int    // length in characters
	// Start, Middle and End are the characters allowed first, in between and last, each as a
	// set of ASCII characters; "" means the same as Middle. A name of one character must obey
	// Start and End.
	Start, Middle, End string
	// Rule says the rule in words, for the message, e.g. "letters, digits, '.', '-' and '_'".
	Rule string
}

const (
	alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// nameCharsNetwork are the characters Microsoft.Network names may contain.
	nameCharsNetwork = alnum + "._-"
)

// Network naming rules, as Azure documents them (resource-name-rules, Microsoft.Network):
// alphanumerics, underscores, periods and hyphens; start with an alphanumeric; end with an
// alphanumeric or an underscore.
var (
	VirtualNetworkName  = networkRule("virtual network", 2, 64)
	SubnetName          = networkRule("subnet", 1, 80)
	PrivateEndpointName = networkRule("private endpoint", 2, 64)
	// NetworkInterfaceName applies to a private endpoint's customNetworkInterfaceName.
	NetworkInterfaceName = networkRule("network interface", 1, 80)
	// LinkConnectionName is the name of a privateLinkServiceConnections entry of a private
	// endpoint.
	LinkConnectionName = networkRule("private link service connection", 1, 80)
	// VirtualNetworkLinkName is the name of a private DNS zone's virtual network link.
	VirtualNetworkLinkName = networkRule("virtual network link", 1, 80)
	// DNSZoneGroupName is the name of a private endpoint's private DNS zone group.
	DNSZoneGroupName = networkRule("private DNS zone group", 1, 80)
	// ConnectionName is the name of a private endpoint connection of a flexible server:
	// "<private endpoint name>.<guid>".
	ConnectionName = NameRule{What: "private endpoint connection", Min: 3, Max: 64 + 1 + 36,
		Start: alnum, Middle: nameCharsNetwork, End: alnum + "_",
		Rule: "the private endpoint's name, '.', and a GUID: letters, digits, '.', '-' and '_', starting with a letter or digit"}
)

func networkRule(what string, min, max int) NameRule {
	return NameRule{What: what, Min: min, Max: max, Start: alnum, Middle: nameCharsNetwork, End: alnum + "_",
		Rule: "letters, digits, '.', '-' and '_', starting with a letter or digit and ending with a letter, digit or '_'"}
}

// Check returns nil if name obeys the rule, or 400 InvalidResourceName with a message that
// states the rule.
func (r NameRule) Check(name string) error {
	if r.valid(name) {
		return nil
	}
	e := Errorf(Invalid, "InvalidResourceName",
		"Resource name '%s' is invalid. A %s name must be %d-%d characters long and use only %s.",
		QuoteName(name), r.What, r.Min, r.Max, r.Rule)
	e.Target = "name"
	return e
}

func (r NameRule) valid(name string) bool {
	if len(name) < r.Min || len(name) > r.Max { // ASCII only: bytes are characters
		return false
	}
	mid := r.Middle
	start, end := r.Start, r.End
	if start == "" {
		start = mid
	}
	if end == "" {
		end = mid
	}
	for i := 0; i < len(name); i++ {
		set := mid
		switch {
		case i == 0:
			set = start
		case i == len(name)-1:
			set = end
		}
		if !strings.ContainsRune(set, rune(name[i])) {
			return false
		}
	}
	return len(name) != 1 || strings.ContainsRune(end, rune(name[0]))
}

// QuoteName returns a user-supplied name fit for a message: at most 80 characters (longer
// ones are cut, with "…"), control characters and invalid UTF-8 escaped.
func QuoteName(s string) string {
	var b strings.Builder
	n := 0
	for i, w := 0, 0; i < len(s); i += w {
		c, size := utf8.DecodeRuneInString(s[i:])
		w = size
		if n == 80 {
			b.WriteString("…")
			break
		}
		n++
		switch {
		case c == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(c):
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}
