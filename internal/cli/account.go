package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"
	"github.com/spf13/cobra"
)

// account is a subscription as az prints it after login (cloudName) and in account show and
// list (environmentName).
type account struct {
	CloudName        string      `json:"cloudName,omitempty"`
	EnvironmentName  string      `json:"environmentName,omitempty"`
	HomeTenantID     string      `json:"homeTenantId"`
	ID               string      `json:"id"`
	IsDefault        bool        `json:"isDefault"`
	ManagedByTenants []any       `json:"managedByTenants"`
	Name             string      `json:"name"`
	State            string      `json:"state"`
	TenantID         string      `json:"tenantId"`
	User             accountUser `json:"user"`
}

type accountUser struct {
	Name string `json:"name"`
	Type string `json:"type"` // "user" or "servicePrincipal"
}

// account describes sub for the login of s.
func (s *session) account(sub *armsubscriptions.Subscription, isDefault bool) account {
	a := s.profileAccount()
	a.ID, a.Name, a.IsDefault = deref(sub.SubscriptionID), deref(sub.DisplayName), isDefault
	if sub.TenantID != nil {
		a.TenantID, a.HomeTenantID = *sub.TenantID, *sub.TenantID
	}
	if sub.State != nil {
		a.State = string(*sub.State)
	}
	return a
}

// profileAccount is the profile's default subscription, from what the profile remembers.
func (s *session) profileAccount() account {
	return account{
		EnvironmentName: "pglink", HomeTenantID: s.p.TenantID, ID: s.p.SubscriptionID, IsDefault: true,
		ManagedByTenants: []any{}, Name: s.p.SubscriptionName, State: "Enabled", TenantID: s.p.TenantID,
		User: accountUser{Name: s.p.Name, Type: s.p.Kind},
	}
}

func (e *env) accountCmd() *cobra.Command {
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show the account logged in to and its default subscription",
		Example: "  pglink account show\n  pglink account show --query user.name -o tsv",
		Args:    cobra.NoArgs,
	}
	show.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		return e.print(s.profileAccount())
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the subscriptions the login can see",
		Example: "  pglink account list -o table",
		Args:    cobra.NoArgs,
	}
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		subs, err := s.subscriptions(ctx)
		if err != nil {
			return err
		}
		out := make([]account, 0, len(subs))
		for _, sub := range subs {
			out = append(out, s.account(sub, strings.EqualFold(deref(sub.SubscriptionID), s.p.SubscriptionID)))
		}
		return e.print(out)
	})

	var subscription string
	set := &cobra.Command{
		Use:     "set",
		Short:   "Set the default subscription",
		Example: "  pglink account set --subscription SUBSCRIPTION_ID",
		Args:    cobra.NoArgs,
	}
	set.Flags().StringVarP(&subscription, "subscription", "s", "", "subscription id or name")
	set.MarkFlagRequired("subscription")
	set.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		subs, err := s.subscriptions(ctx)
		if err != nil {
			return err
		}
		for _, sub := range subs {
			if strings.EqualFold(deref(sub.SubscriptionID), subscription) || deref(sub.DisplayName) == subscription {
				s.p.SubscriptionID, s.p.SubscriptionName = deref(sub.SubscriptionID), deref(sub.DisplayName)
				return s.p.save(e.configDir)
			}
		}
		return fmt.Errorf("the subscription of '%s' doesn't exist in cloud 'pglink'", subscription)
	})
	return group("account", "Manage the login's subscriptions", show, list, set)
}
