package postgresql

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Limits are the provider's quotas. A zero field takes its default from DefaultLimits.
type Limits struct {
	// ConnectionsPerServer caps the private endpoint connections of one server, whatever
	// their state (each private endpoint holds a data-plane listener). Azure allows 1,000
	// private endpoints per private link resource.
	ConnectionsPerServer int
	// FirewallRulesPerServer caps the firewall rules of one server (Azure SQL allows 256
	// server-level rules; pglink uses 128 unless told otherwise).
	FirewallRulesPerServer int
}

// DefaultLimits are the quotas pglink serve uses unless told otherwise.
func DefaultLimits() Limits {
	return Limits{ConnectionsPerServer: 1000, FirewallRulesPerServer: 128}
}

// maxStateDescription bounds privateLinkServiceConnectionState.description of an approval or
// rejection (pglink's limit; Azure documents none).
const maxStateDescription = 512

// SetLimits sets the provider's quotas; call it before serving.
func (p *Provider) SetLimits(l Limits) {
	p.limits = l
}

// limit returns the quota in force: the configured one, or the default.
func (p *Provider) limit(get func(Limits) int) int {
	if n := get(p.limits); n > 0 {
		return n
	}
	return get(DefaultLimits())
}

// checkChildQuota refuses a new child of type typ under server when it already has max.
func checkChildQuota(ctx context.Context, tx store.Tx, server resource.ID, typ, what string, max int) error {
	all, err := tx.List(ctx, store.ListOptions{Parent: server.Key(), Type: typ})
	if err != nil {
		return fmt.Errorf("list %s of %s: %w", what, server, err)
	}
	if len(all) >= max {
		return resource.Errorf(resource.Conflict, "QuotaExceeded",
			"Server '%s' already has %d %s, the most allowed per server. Delete unused ones first.", server.Name(), len(all), what)
	}
	return nil
}

// checkLength refuses a string property longer than max characters.
func checkLength(property, v string, max int) error {
	if c := utf8.RuneCountInString(v); c > max {
		return resource.InvalidParameter(property, "Property '%s' has %d characters; at most %d are allowed.", property, c, max)
	}
	return nil
}
