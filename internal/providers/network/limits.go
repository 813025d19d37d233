package network

import (
	"unicode/utf8"

	"github.com/pglink/pglink/internal/resource"
)

// Limits are the provider's quotas. A zero field takes its default from DefaultLimits.
type Limits struct {
	// EndpointsPerSubnet caps the private endpoints in one subnet (each holds a data-plane
	// listener). Azure allows 1,000 private endpoints per virtual network.
	EndpointsPerSubnet int
}

// DefaultLimits are the quotas pglink serve uses unless told otherwise.
func DefaultLimits() Limits {
	return Limits{EndpointsPerSubnet: 1000}
}

// Property limits, Azure's where it documents one.
const (
	// maxAddressPrefixes bounds addressSpace.addressPrefixes of a virtual network and
	// addressPrefixes of a subnet (pglink's limit; Azure documents none).
	maxAddressPrefixes = 100
	// maxSubnets is Azure's limit of subnets per virtual network.
	maxSubnets = 3000
	// maxRequestMessage is Azure's limit on a private link service connection's request
	// message.
	maxRequestMessage = 140
)

// SetLimits sets the provider's quotas; call it before serving.
func (p *Provider) SetLimits(l Limits) {
	p.limits = l
}

// endpointsPerSubnet returns the per-subnet quota in force.
func (p *Provider) endpointsPerSubnet() int {
	if p.limits.EndpointsPerSubnet > 0 {
		return p.limits.EndpointsPerSubnet
	}
	return DefaultLimits().EndpointsPerSubnet
}

// checkSubnetQuota refuses a new private endpoint in a subnet that holds its quota.
func (p *Provider) checkSubnetQuota(s *Subnet) error {
	if n, max := len(s.Properties.PrivateEndpoints), p.endpointsPerSubnet(); n >= max {
		return resource.Errorf(resource.Conflict, "QuotaExceeded",
			"Subnet '%s' already holds %d private endpoints, the most allowed per subnet. Delete unused private endpoints or use another subnet.", s.Name, n)
	}
	return nil
}

// checkCount refuses a list property with more than max entries.
func checkCount(property string, n, max int) error {
	if n > max {
		return resource.InvalidParameter(property, "Property '%s' has %d entries; at most %d are allowed.", property, n, max)
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

// checkSubnetInput applies the naming rule and property limits to a subnet of a request.
func checkSubnetInput(s Subnet) error {
	if err := resource.SubnetName.Check(s.Name); err != nil {
		return err
	}
	return checkCount("properties.addressPrefixes", len(s.Properties.AddressPrefixes), maxAddressPrefixes)
}

// checkEndpointInput applies the naming rules and property limits to a private endpoint of a
// request. (createEndpoint requires exactly one connection with one group id.)
func checkEndpointInput(in PrivateEndpoint) error {
	pr := in.Properties
	for _, conns := range [][]LinkConnection{pr.PrivateLinkServiceConnections, pr.ManualPrivateLinkServiceConnections} {
		for _, c := range conns {
			if c.Name != "" {
				if err := resource.LinkConnectionName.Check(c.Name); err != nil {
					return err
				}
			}
			if err := checkLength("requestMessage", c.Properties.RequestMessage, maxRequestMessage); err != nil {
				return err
			}
		}
	}
	if pr.CustomNetworkInterfaceName != "" {
		if err := resource.NetworkInterfaceName.Check(pr.CustomNetworkInterfaceName); err != nil {
			return err
		}
	}
	return nil
}
