package cli

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// credentialWarning is what az prints beside a new secret.
const credentialWarning = "The output includes credentials that you must protect. Be sure that you do not include these credentials in your code or check the credentials into your source control."

// graphUser and graphSP are the parts of the directory's users and service principals the
// commands read; the commands print the directory's objects as they come.
type graphUser struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
}

type graphSP struct {
	ID                  string `json:"id"`
	AppID               string `json:"appId"`
	DisplayName         string `json:"displayName"`
	PasswordCredentials []struct {
		KeyID string `json:"keyId"`
	} `json:"passwordCredentials"`
}

type graphList[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// passwordCredential is the answer of addPassword.
type passwordCredential struct {
	KeyID      string `json:"keyId"`
	SecretText string `json:"secretText"`
}

// list gets path and, if all, the pages after it; more reports whether pages were left.
func (g *graph) list(ctx context.Context, path string, all bool) (items []map[string]any, more bool, err error) {
	for path != "" {
		var page graphList[map[string]any]
		if err := g.do(ctx, "GET", path, nil, &page); err != nil {
			return nil, false, err
		}
		items = append(items, page.Value...)
		path = ""
		if page.NextLink != "" {
			if !all {
				return items, true, nil
			}
			path = strings.TrimPrefix(page.NextLink, g.base)
		}
	}
	return items, false, nil
}

// filterPath is path with a $filter query.
func filterPath(path, filter string) string {
	return path + "?$filter=" + url.QueryEscape(filter)
}

// resolveAssignee returns the object id and principal type of a user principal name, a
// service principal's appId or an object id.
func (s *session) resolveAssignee(ctx context.Context, assignee string) (id, principalType string, err error) {
	g := s.graph()
	if strings.Contains(assignee, "@") {
		var u graphUser
		if err := g.do(ctx, "GET", "/users/"+url.PathEscape(assignee), nil, &u); err == nil {
			return u.ID, "User", nil
		} else if !notFound(err) {
			return "", "", fmt.Errorf("look up user %s: %w", assignee, err)
		}
	} else {
		var sp graphSP
		if err := g.do(ctx, "GET", "/servicePrincipals/"+url.PathEscape(assignee), nil, &sp); err == nil {
			return sp.ID, "ServicePrincipal", nil
		} else if !notFound(err) {
			return "", "", fmt.Errorf("look up service principal %s: %w", assignee, err)
		}
		if isGUID(assignee) {
			var u graphUser
			if err := g.do(ctx, "GET", "/users/"+assignee, nil, &u); err == nil {
				return u.ID, "User", nil
			} else if !notFound(err) {
				return "", "", fmt.Errorf("look up user %s: %w", assignee, err)
			}
		}
	}
	return "", "", fmt.Errorf("cannot find user or service principal in the directory for '%s': give a user principal name, a service principal's appId or an object id", assignee)
}

// principalName is the user principal name or appId of the principal with object id id, or
// "" if the directory does not say.
func (s *session) principalName(ctx context.Context, id string) string {
	g := s.graph()
	var u graphUser
	if g.do(ctx, "GET", "/users/"+url.PathEscape(id), nil, &u) == nil {
		return u.UserPrincipalName
	}
	var sp graphSP
	if g.do(ctx, "GET", "/servicePrincipals/"+url.PathEscape(id), nil, &sp) == nil {
		return sp.AppID
	}
	return ""
}

// addPassword adds a password that is valid for years to a service principal.
func (g *graph) addPassword(ctx context.Context, sp, displayName string, years int, now time.Time) (passwordCredential, error) {
	cred := map[string]any{"endDateTime": now.AddDate(years, 0, 0).UTC().Format(time.RFC3339)}
	if displayName != "" {
		cred["displayName"] = displayName
	}
	var pc passwordCredential
	if err := g.do(ctx, "POST", "/servicePrincipals/"+url.PathEscape(sp)+"/addPassword", map[string]any{"passwordCredential": cred}, &pc); err != nil {
		return pc, fmt.Errorf("add a password to service principal %s: %w", sp, err)
	}
	return pc, nil
}

func (e *env) adCmd() *cobra.Command {
	return group("ad", "Manage the directory: users and service principals", e.adSPCmd(), e.adUserCmd())
}

func (e *env) adSPCmd() *cobra.Command {
	var name, role, displayName, id string
	var scopes []string
	var years int
	var all, appendCred bool
	rbac := &cobra.Command{
		Use:   "create-for-rbac",
		Short: "Create a service principal with a password, and assign it roles",
		Long: `Create a service principal and a password for it, and with --role and --scopes assign it that
role at each scope. If a service principal with the display name exists, it gets a new password
instead. The output holds the password: it is shown only once.`,
		Example: `  pglink ad sp create-for-rbac --name dbadmin --role "PostgreSQL Flexible Server Administrator" --scopes /subscriptions/SUBSCRIPTION_ID/resourceGroups/db
  pglink ad sp create-for-rbac --name ci --years 2`,
		Args: cobra.ArbitraryArgs,
	}
	rbac.Flags().StringVarP(&name, "name", "n", "", "display name of the service principal")
	rbac.Flags().StringVar(&role, "role", "", "role to assign at --scopes")
	rbac.Flags().StringArrayVar(&scopes, "scopes", nil, "space-separated scopes to assign --role at")
	rbac.Flags().IntVar(&years, "years", 1, "years the password is valid for")
	rbac.MarkFlagRequired("name")
	rbac.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		scopes, err := spaceList(cmd, "scopes", scopes)
		if err != nil {
			return err
		}
		if (role == "") != (len(scopes) == 0) {
			return usagef("to create role assignments, specify both --role and --scopes")
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		g := s.graph()
		var found graphList[graphSP]
		if err := g.do(ctx, "GET", filterPath("/servicePrincipals", "displayName eq "+odataQuote(name)), nil, &found); err != nil {
			return fmt.Errorf("look up service principal %s: %w", name, err)
		}
		var sp graphSP
		if len(found.Value) > 0 {
			sp = found.Value[0]
			e.warn("Found an existing service principal with display name '%s': adding a new password to it", name)
		} else if err := g.do(ctx, "POST", "/servicePrincipals", map[string]any{"displayName": name}, &sp); err != nil {
			return fmt.Errorf("create service principal %s: %w", name, err)
		}
		pc, err := g.addPassword(ctx, sp.ID, "rbac", years, e.now())
		if err != nil {
			return err
		}
		for _, scope := range scopes {
			e.warn("Creating '%s' role assignment under scope '%s'", role, scope)
			if _, err := s.assign(ctx, sp.ID, "ServicePrincipal", role, scope); err != nil {
				return err
			}
		}
		e.warn(credentialWarning)
		return e.print(map[string]string{"appId": sp.AppID, "displayName": sp.DisplayName, "password": pc.SecretText, "tenant": s.p.TenantID})
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List service principals",
		Example: "  pglink ad sp list --all --query \"[].{name:displayName, appId:appId}\" -o table\n  pglink ad sp list --display-name dbadmin",
		Args:    cobra.NoArgs,
	}
	list.Flags().StringVar(&displayName, "display-name", "", "display name to look for")
	list.Flags().BoolVar(&all, "all", false, "list all, not only the first page")
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		path := "/servicePrincipals"
		if displayName != "" {
			path = filterPath(path, "displayName eq "+odataQuote(displayName))
		}
		items, more, err := s.graph().list(ctx, path, all)
		if err != nil {
			return fmt.Errorf("list service principals: %w", err)
		}
		if more {
			e.warn("The result is not complete. You can still use '--all' to get all of them, or provide a filter through command arguments")
		}
		return e.print(orEmpty(items))
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a service principal",
		Example: "  pglink ad sp show --id APP_ID",
		Args:    cobra.NoArgs,
	}
	show.Flags().StringVar(&id, "id", "", "appId or object id")
	show.MarkFlagRequired("id")
	show.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		var sp map[string]any
		if err := s.graph().do(ctx, "GET", "/servicePrincipals/"+url.PathEscape(id), nil, &sp); err != nil {
			return fmt.Errorf("show service principal %s: %w", id, err)
		}
		return e.print(sp)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a service principal",
		Example: "  pglink ad sp delete --id APP_ID",
		Args:    cobra.NoArgs,
	}
	del.Flags().StringVar(&id, "id", "", "appId or object id")
	del.MarkFlagRequired("id")
	del.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		if err := s.graph().do(ctx, "DELETE", "/servicePrincipals/"+url.PathEscape(id), nil, nil); err != nil {
			return fmt.Errorf("delete service principal %s: %w", id, err)
		}
		return nil
	})

	reset := &cobra.Command{
		Use:   "reset",
		Short: "Add a new password to a service principal; without --append, remove its others",
		Example: `  pglink ad sp credential reset --id APP_ID
  pglink ad sp credential reset --id APP_ID --append --years 2 --display-name rotation`,
		Args: cobra.NoArgs,
	}
	reset.Flags().StringVar(&id, "id", "", "appId or object id")
	reset.Flags().BoolVar(&appendCred, "append", false, "keep the existing passwords")
	reset.Flags().IntVar(&years, "years", 1, "years the password is valid for")
	reset.Flags().StringVar(&displayName, "display-name", "", "display name of the password")
	reset.MarkFlagRequired("id")
	reset.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		g := s.graph()
		var sp graphSP
		if err := g.do(ctx, "GET", "/servicePrincipals/"+url.PathEscape(id), nil, &sp); err != nil {
			return fmt.Errorf("show service principal %s: %w", id, err)
		}
		pc, err := g.addPassword(ctx, sp.ID, displayName, years, e.now())
		if err != nil {
			return err
		}
		if !appendCred {
			for _, old := range sp.PasswordCredentials {
				if err := g.do(ctx, "POST", "/servicePrincipals/"+sp.ID+"/removePassword", map[string]string{"keyId": old.KeyID}, nil); err != nil {
					return fmt.Errorf("remove password %s of service principal %s: %w", old.KeyID, id, err)
				}
			}
		}
		e.warn(credentialWarning)
		return e.print(map[string]string{"appId": sp.AppID, "password": pc.SecretText, "tenant": s.p.TenantID})
	})
	credential := group("credential", "Manage a service principal's passwords", reset)
	return group("sp", "Manage service principals", rbac, list, show, del, credential)
}

func orEmpty(items []map[string]any) []map[string]any {
	if items == nil {
		return []map[string]any{}
	}
	return items
}

func (e *env) adUserCmd() *cobra.Command {
	var id, displayName, password, upn, forceChange, enabled string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a user",
		Example: "  pglink ad user create --display-name \"Dana Admin\" --password 'S3cret-pass' --user-principal-name dana@pglink.local",
		Args:    cobra.NoArgs,
	}
	create.Flags().StringVar(&displayName, "display-name", "", "display name")
	create.Flags().StringVar(&password, "password", "", "password")
	create.Flags().StringVar(&upn, "user-principal-name", "", "user principal name, e.g. dana@pglink.local")
	create.Flags().StringVar(&forceChange, "force-change-password-next-sign-in", "", "true or false: whether the user must change the password at the next sign-in")
	for _, f := range []string{"display-name", "password", "user-principal-name"} {
		create.MarkFlagRequired(f)
	}
	create.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		profile := map[string]any{"password": password}
		if forceChange != "" {
			b, err := strconv.ParseBool(forceChange)
			if err != nil {
				return usagef("argument --force-change-password-next-sign-in: invalid value '%s': use true or false", forceChange)
			}
			profile["forceChangePasswordNextSignIn"] = b
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		var u map[string]any
		body := map[string]any{"userPrincipalName": upn, "displayName": displayName, "passwordProfile": profile, "accountEnabled": true}
		if err := s.graph().do(ctx, "POST", "/users", body, &u); err != nil {
			return fmt.Errorf("create user %s: %w", upn, err)
		}
		return e.print(u)
	})

	list := &cobra.Command{
		Use:     "list",
		Short:   "List users",
		Example: "  pglink ad user list --query \"[].userPrincipalName\" -o tsv",
		Args:    cobra.NoArgs,
	}
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		items, _, err := s.graph().list(ctx, "/users", true)
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		return e.print(orEmpty(items))
	})

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a user",
		Example: "  pglink ad user show --id dana@pglink.local",
		Args:    cobra.NoArgs,
	}
	show.Flags().StringVar(&id, "id", "", "user principal name or object id")
	show.MarkFlagRequired("id")
	show.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		var u map[string]any
		if err := s.graph().do(ctx, "GET", "/users/"+url.PathEscape(id), nil, &u); err != nil {
			return fmt.Errorf("show user %s: %w", id, err)
		}
		return e.print(u)
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a user",
		Example: "  pglink ad user delete --id dana@pglink.local",
		Args:    cobra.NoArgs,
	}
	del.Flags().StringVar(&id, "id", "", "user principal name or object id")
	del.MarkFlagRequired("id")
	del.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		if err := s.graph().do(ctx, "DELETE", "/users/"+url.PathEscape(id), nil, nil); err != nil {
			return fmt.Errorf("delete user %s: %w", id, err)
		}
		return nil
	})

	update := &cobra.Command{
		Use:     "update",
		Short:   "Update a user: enable or disable the account, set the password or display name",
		Example: "  pglink ad user update --id dana@pglink.local --account-enabled false\n  pglink ad user update --id dana@pglink.local --password 'N3w-pass'",
		Args:    cobra.NoArgs,
	}
	update.Flags().StringVar(&id, "id", "", "user principal name or object id")
	update.Flags().StringVar(&enabled, "account-enabled", "", "true or false")
	update.Flags().StringVar(&password, "password", "", "new password")
	update.Flags().StringVar(&displayName, "display-name", "", "new display name")
	update.MarkFlagRequired("id")
	update.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		body := map[string]any{}
		if enabled != "" {
			b, err := strconv.ParseBool(enabled)
			if err != nil {
				return usagef("argument --account-enabled: invalid value '%s': use true or false", enabled)
			}
			body["accountEnabled"] = b
		}
		if password != "" {
			body["passwordProfile"] = map[string]any{"password": password}
		}
		if displayName != "" {
			body["displayName"] = displayName
		}
		if len(body) == 0 {
			return usagef("give at least one of --account-enabled, --password and --display-name")
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		if err := s.graph().do(ctx, "PATCH", "/users/"+url.PathEscape(id), body, nil); err != nil {
			return fmt.Errorf("update user %s: %w", id, err)
		}
		return nil
	})
	return group("user", "Manage users", create, list, show, del, update)
}
