package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/spf13/cobra"

	"github.com/google/uuid"
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return guidRE.MatchString(s) }

// odataQuote quotes s as an OData string literal.
func odataQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// roleDefinition is a role definition as az prints it: properties flattened.
type roleDefinition struct {
	AssignableScopes []*string    `json:"assignableScopes"`
	Description      *string      `json:"description"`
	ID               string       `json:"id"`
	Name             string       `json:"name"`
	Permissions      []permission `json:"permissions"`
	RoleName         *string      `json:"roleName"`
	RoleType         *string      `json:"roleType"`
	Type             string       `json:"type"`
}

type permission struct {
	Actions        []*string `json:"actions"`
	DataActions    []*string `json:"dataActions"`
	NotActions     []*string `json:"notActions"`
	NotDataActions []*string `json:"notDataActions"`
}

func orNone(s []*string) []*string {
	if s == nil {
		return []*string{}
	}
	return s
}

func definitionOut(d *armauthorization.RoleDefinition) roleDefinition {
	out := roleDefinition{ID: deref(d.ID), Name: deref(d.Name), Type: deref(d.Type), Permissions: []permission{}}
	if p := d.Properties; p != nil {
		out.AssignableScopes, out.Description, out.RoleName, out.RoleType = orNone(p.AssignableScopes), p.Description, p.RoleName, p.RoleType
		for _, perm := range p.Permissions {
			if perm != nil {
				out.Permissions = append(out.Permissions, permission{orNone(perm.Actions), orNone(perm.DataActions), orNone(perm.NotActions), orNone(perm.NotDataActions)})
			}
		}
	}
	return out
}

// roleAssignment is a role assignment as az prints it: properties flattened; list adds the
// principal's and the role's names.
type roleAssignment struct {
	Condition                          *string    `json:"condition"`
	ConditionVersion                   *string    `json:"conditionVersion"`
	CreatedBy                          *string    `json:"createdBy"`
	CreatedOn                          *time.Time `json:"createdOn"`
	DelegatedManagedIdentityResourceID *string    `json:"delegatedManagedIdentityResourceId"`
	Description                        *string    `json:"description"`
	ID                                 string     `json:"id"`
	Name                               string     `json:"name"`
	PrincipalID                        string     `json:"principalId"`
	PrincipalName                      *string    `json:"principalName,omitempty"`
	PrincipalType                      *string    `json:"principalType"`
	RoleDefinitionID                   string     `json:"roleDefinitionId"`
	RoleDefinitionName                 *string    `json:"roleDefinitionName,omitempty"`
	Scope                              string     `json:"scope"`
	Type                               string     `json:"type"`
	UpdatedBy                          *string    `json:"updatedBy"`
	UpdatedOn                          *time.Time `json:"updatedOn"`
}

func assignmentOut(a *armauthorization.RoleAssignment) roleAssignment {
	out := roleAssignment{ID: deref(a.ID), Name: deref(a.Name), Type: deref(a.Type)}
	if p := a.Properties; p != nil {
		out.Condition, out.ConditionVersion, out.CreatedBy, out.CreatedOn = p.Condition, p.ConditionVersion, p.CreatedBy, p.CreatedOn
		out.DelegatedManagedIdentityResourceID, out.Description = p.DelegatedManagedIdentityResourceID, p.Description
		out.PrincipalID, out.RoleDefinitionID, out.Scope = deref(p.PrincipalID), deref(p.RoleDefinitionID), deref(p.Scope)
		out.UpdatedBy, out.UpdatedOn = p.UpdatedBy, p.UpdatedOn
		if p.PrincipalType != nil {
			t := string(*p.PrincipalType)
			out.PrincipalType = &t
		}
	}
	return out
}

// scope is the ARM scope named by --scope or --resource-group; the subscription's if neither.
func (s *session) scope(scope, group string) (string, error) {
	if scope != "" && group != "" {
		return "", usagef("give --scope or --resource-group, not both")
	}
	if group != "" {
		return s.subscriptionScope() + "/resourceGroups/" + group, nil
	}
	if scope != "" {
		return strings.TrimSuffix(scope, "/"), nil
	}
	return s.subscriptionScope(), nil
}

func (s *session) definitions() (*armauthorization.RoleDefinitionsClient, error) {
	return armauthorization.NewRoleDefinitionsClient(s.cred, s.armOptions())
}

func (s *session) assignments() (*armauthorization.RoleAssignmentsClient, error) {
	return armauthorization.NewRoleAssignmentsClient(s.p.SubscriptionID, s.cred, s.armOptions())
}

// searchDefinitions lists the role definitions visible at scope; name, if not empty, selects
// by role name or GUID.
func (s *session) searchDefinitions(ctx context.Context, scope, name string, customOnly bool) ([]*armauthorization.RoleDefinition, error) {
	client, err := s.definitions()
	if err != nil {
		return nil, err
	}
	opts := &armauthorization.RoleDefinitionsClientListOptions{}
	if name != "" && !isGUID(name) {
		opts.Filter = ptr("roleName eq " + odataQuote(name))
	}
	var out []*armauthorization.RoleDefinition
	for pager := client.NewListPager(scope, opts); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list role definitions at %s: %w", scope, err)
		}
		for _, d := range page.Value {
			if name != "" && !strings.EqualFold(deref(d.Name), name) && (d.Properties == nil || !strings.EqualFold(deref(d.Properties.RoleName), name)) {
				continue
			}
			if customOnly && (d.Properties == nil || deref(d.Properties.RoleType) != "CustomRole") {
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// resolveRole returns the definition id of role: a full id, a GUID or a role name looked up at
// scope.
func (s *session) resolveRole(ctx context.Context, role, scope string) (string, error) {
	if strings.HasPrefix(role, "/") {
		return role, nil
	}
	if isGUID(role) {
		return s.subscriptionScope() + "/providers/Microsoft.Authorization/roleDefinitions/" + role, nil
	}
	defs, err := s.searchDefinitions(ctx, scope, role, false)
	if err != nil {
		return "", err
	}
	switch len(defs) {
	case 0:
		return "", fmt.Errorf("role '%s' doesn't exist", role)
	case 1:
		return deref(defs[0].ID), nil
	}
	return "", fmt.Errorf("multiple roles named '%s' exist: use the role's id instead", role)
}

// readJSONArg reads a JSON argument given inline, as @FILE or as the path of a file.
func readJSONArg(flag, v string) (map[string]any, error) {
	data := []byte(v)
	if f, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if data, err = os.ReadFile(f); err != nil {
			return nil, fmt.Errorf("read %s: %w", flag, err)
		}
	} else if st, err := os.Stat(v); err == nil && !st.IsDir() {
		if data, err = os.ReadFile(v); err != nil {
			return nil, fmt.Errorf("read %s: %w", flag, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, usagef("%s is not a JSON object or a file holding one: %v", flag, err)
	}
	return m, nil
}

// stringsOf returns the strings of a JSON array value.
func stringsOf(v any) []*string {
	list, _ := v.([]any)
	out := []*string{}
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, ptr(s))
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// parseRoleDefinition reads az's role definition format: Name, Description, Actions,
// NotActions, DataActions, NotDataActions, AssignableScopes (keys in any case).
func parseRoleDefinition(m map[string]any) (armauthorization.RoleDefinition, string, error) {
	get := func(key string) any {
		for k, v := range m {
			if strings.EqualFold(k, key) {
				return v
			}
		}
		return nil
	}
	name, _ := get("name").(string)
	if name == "" {
		name, _ = get("roleName").(string)
	}
	if name == "" {
		return armauthorization.RoleDefinition{}, "", usagef("--role-definition: please provide role name (Name)")
	}
	scopes := stringsOf(get("assignableScopes"))
	if len(scopes) == 0 {
		return armauthorization.RoleDefinition{}, "", usagef("--role-definition: please provide 'AssignableScopes'")
	}
	perm := &armauthorization.Permission{
		Actions: stringsOf(get("actions")), NotActions: stringsOf(get("notActions")),
		DataActions: stringsOf(get("dataActions")), NotDataActions: stringsOf(get("notDataActions")),
	}
	if perms, ok := get("permissions").([]any); ok && len(perms) > 0 {
		if p0, ok := perms[0].(map[string]any); ok {
			for k, v := range p0 {
				switch strings.ToLower(k) {
				case "actions":
					perm.Actions = stringsOf(v)
				case "notactions":
					perm.NotActions = stringsOf(v)
				case "dataactions":
					perm.DataActions = stringsOf(v)
				case "notdataactions":
					perm.NotDataActions = stringsOf(v)
				}
			}
		}
	}
	desc, _ := get("description").(string)
	d := armauthorization.RoleDefinition{Properties: &armauthorization.RoleDefinitionProperties{
		RoleName: &name, Description: &desc, RoleType: ptr("CustomRole"), AssignableScopes: scopes,
		Permissions: []*armauthorization.Permission{perm},
	}}
	return d, *scopes[0], nil
}

func (e *env) roleCmd() *cobra.Command {
	return group("role", "Manage role definitions and role assignments (Azure RBAC)", e.roleDefinitionCmd(), e.roleAssignmentCmd())
}

func (e *env) roleDefinitionCmd() *cobra.Command {
	var name, scope, rg, def string
	var customOnly bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List role definitions",
		Example: `  pglink role definition list --query "[].roleName" -o tsv
  pglink role definition list --name "PostgreSQL Flexible Server Administrator"
  pglink role definition list --custom-role-only -o table`,
		Args: cobra.NoArgs,
	}
	list.Flags().StringVarP(&name, "name", "n", "", "role name or GUID")
	list.Flags().StringVar(&scope, "scope", "", "scope to list at (default: the subscription)")
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group to list at")
	list.Flags().BoolVar(&customOnly, "custom-role-only", false, "list only custom roles")
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		sc, err := s.scope(scope, rg)
		if err != nil {
			return err
		}
		defs, err := s.searchDefinitions(ctx, sc, name, customOnly)
		if err != nil {
			return err
		}
		out := make([]roleDefinition, 0, len(defs))
		for _, d := range defs {
			out = append(out, definitionOut(d))
		}
		return e.print(out)
	})

	create := &cobra.Command{
		Use:   "create",
		Short: "Create a custom role",
		Long: `Create a custom role. --role-definition is a JSON object in az's format, inline, as @FILE
or as a file name: Name, Description, Actions, NotActions, DataActions, NotDataActions and
AssignableScopes (the first assignable scope is where the role is created).`,
		Example: `  pglink role definition create --role-definition '{"Name":"Connection Approver","Description":"Approves private endpoint connections","Actions":["Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/*","Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action"],"AssignableScopes":["/subscriptions/SUBSCRIPTION_ID"]}'
  pglink role definition create --role-definition @role.json`,
		Args: cobra.NoArgs,
	}
	create.Flags().StringVar(&def, "role-definition", "", "role definition: JSON, @FILE or a file name")
	create.MarkFlagRequired("role-definition")
	create.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		m, err := readJSONArg("--role-definition", def)
		if err != nil {
			return err
		}
		d, at, err := parseRoleDefinition(m)
		if err != nil {
			return err
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.definitions()
		if err != nil {
			return err
		}
		resp, err := client.CreateOrUpdate(ctx, at, uuid.NewString(), d, nil)
		if err != nil {
			return fmt.Errorf("create role %s: %w", *d.Properties.RoleName, err)
		}
		return e.print(definitionOut(&resp.RoleDefinition))
	})

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a custom role",
		Example: `  pglink role definition delete --name "Connection Approver"`,
		Args:    cobra.NoArgs,
	}
	del.Flags().StringVarP(&name, "name", "n", "", "role name or GUID")
	del.Flags().StringVar(&scope, "scope", "", "scope the role is found at (default: the subscription)")
	del.Flags().StringVarP(&rg, "resource-group", "g", "", "resource group the role is found at")
	del.MarkFlagRequired("name")
	del.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		sc, err := s.scope(scope, rg)
		if err != nil {
			return err
		}
		defs, err := s.searchDefinitions(ctx, sc, name, true)
		if err != nil {
			return err
		}
		if len(defs) == 0 {
			return fmt.Errorf("custom role '%s' doesn't exist", name)
		}
		client, err := s.definitions()
		if err != nil {
			return err
		}
		for _, d := range defs {
			at := sc
			if d.Properties != nil && len(d.Properties.AssignableScopes) > 0 {
				at = deref(d.Properties.AssignableScopes[0])
			}
			if _, err := client.Delete(ctx, at, deref(d.Name), nil); err != nil {
				return fmt.Errorf("delete role %s: %w", name, err)
			}
		}
		return nil
	})
	return group("definition", "Manage role definitions", list, create, del)
}

// assignmentQuery selects role assignments as az's role assignment list and delete do.
type assignmentQuery struct {
	assignee, objectID, role, scope, group string
	all, inherited                         bool
}

func (q *assignmentQuery) flags(c *cobra.Command, all bool) {
	f := c.Flags()
	f.StringVar(&q.assignee, "assignee", "", "user principal name, service principal appId, or object id")
	f.StringVar(&q.objectID, "assignee-object-id", "", "object id of the assignee (no directory look-up)")
	f.StringVar(&q.role, "role", "", "role name, GUID or definition id")
	f.StringVar(&q.scope, "scope", "", "scope, e.g. /subscriptions/S/resourceGroups/G")
	f.StringVarP(&q.group, "resource-group", "g", "", "resource group as the scope")
	f.BoolVar(&q.inherited, "include-inherited", false, "include assignments at scopes above --scope")
	if all {
		f.BoolVar(&q.all, "all", false, "show assignments at every scope of the subscription, not only the subscription itself")
	}
}

// search runs the query.
func (q *assignmentQuery) search(ctx context.Context, s *session) ([]*armauthorization.RoleAssignment, error) {
	client, err := s.assignments()
	if err != nil {
		return nil, err
	}
	scope := ""
	if q.all {
		if q.scope != "" || q.group != "" {
			return nil, usagef("group or scope are not required when --all is used")
		}
	} else if scope, err = s.scope(q.scope, q.group); err != nil {
		return nil, err
	}
	principal := q.objectID
	if principal == "" && q.assignee != "" {
		if principal, _, err = s.resolveAssignee(ctx, q.assignee); err != nil {
			return nil, err
		}
	}
	roleID := ""
	if q.role != "" {
		at := scope
		if at == "" {
			at = s.subscriptionScope()
		}
		if roleID, err = s.resolveRole(ctx, q.role, at); err != nil {
			return nil, err
		}
	}
	var all []*armauthorization.RoleAssignment
	if scope != "" {
		for pager := client.NewListForScopePager(scope, &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: ptr("atScope()")}); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list role assignments at %s: %w", scope, err)
			}
			all = append(all, page.Value...)
		}
	} else {
		opts := &armauthorization.RoleAssignmentsClientListForSubscriptionOptions{}
		if principal != "" {
			opts.Filter = ptr("principalId eq " + odataQuote(principal))
		}
		for pager := client.NewListForSubscriptionPager(opts); pager.More(); {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list role assignments: %w", err)
			}
			all = append(all, page.Value...)
		}
	}
	var out []*armauthorization.RoleAssignment
	for _, a := range all {
		p := a.Properties
		if p == nil {
			continue
		}
		at := deref(p.Scope)
		inScope := scope == "" || strings.EqualFold(at, scope) ||
			q.inherited && (at == "/" || strings.HasPrefix(strings.ToLower(scope)+"/", strings.ToLower(at)+"/"))
		if !inScope || principal != "" && !strings.EqualFold(deref(p.PrincipalID), principal) ||
			roleID != "" && !strings.EqualFold(lastSegment(deref(p.RoleDefinitionID)), lastSegment(roleID)) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

func lastSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// spaceList returns the values of a list flag given az's way, space-separated: the flag's own
// values and the arguments after it. Arguments without the flag are a usage error.
func spaceList(cmd *cobra.Command, flag string, vals []string) ([]string, error) {
	args := cmd.Flags().Args()
	if len(args) > 0 && !cmd.Flags().Changed(flag) {
		return nil, usagef("unrecognized arguments: %s", strings.Join(args, " "))
	}
	return append(vals, args...), nil
}

func (e *env) roleAssignmentCmd() *cobra.Command {
	var q assignmentQuery
	var principalType string
	create := &cobra.Command{
		Use:   "create",
		Short: "Assign a role to a user or service principal at a scope",
		Example: `  pglink role assignment create --assignee admin@pglink.local --role Reader --scope /subscriptions/SUBSCRIPTION_ID
  pglink role assignment create --assignee APP_ID --role "PostgreSQL Flexible Server Administrator" -g db`,
		Args: cobra.NoArgs,
	}
	create.Flags().StringVar(&q.assignee, "assignee", "", "user principal name, service principal appId, or object id")
	create.Flags().StringVar(&q.objectID, "assignee-object-id", "", "object id of the assignee (no directory look-up)")
	create.Flags().StringVar(&principalType, "assignee-principal-type", "", "with --assignee-object-id: User or ServicePrincipal")
	create.Flags().StringVar(&q.role, "role", "", "role name, GUID or definition id")
	create.Flags().StringVar(&q.scope, "scope", "", "scope (default: the subscription)")
	create.Flags().StringVarP(&q.group, "resource-group", "g", "", "resource group as the scope")
	create.MarkFlagRequired("role")
	create.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		if (q.assignee == "") == (q.objectID == "") {
			return usagef("give one of --assignee and --assignee-object-id")
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		scope, err := s.scope(q.scope, q.group)
		if err != nil {
			return err
		}
		principal := q.objectID
		if q.assignee != "" {
			if principal, principalType, err = s.resolveAssignee(ctx, q.assignee); err != nil {
				return err
			}
		}
		a, err := s.assign(ctx, principal, principalType, q.role, scope)
		if err != nil {
			return err
		}
		return e.print(assignmentOut(a))
	})

	list := &cobra.Command{
		Use:   "list",
		Short: "List role assignments",
		Long: `List role assignments. By default only those at the subscription itself are shown; use
--all for every scope in the subscription, or --scope / -g for one scope.`,
		Example: `  pglink role assignment list --all -o table
  pglink role assignment list --assignee admin@pglink.local --scope /subscriptions/SUBSCRIPTION_ID/resourceGroups/db`,
		Args: cobra.NoArgs,
	}
	var lq assignmentQuery
	lq.flags(list, true)
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		s, err := e.session()
		if err != nil {
			return err
		}
		found, err := lq.search(ctx, s)
		if err != nil {
			return err
		}
		return e.printTable(s.named(ctx, found), func(a map[string]any) ([]cell, bool) {
			return []cell{{"Principal", a["principalName"]}, {"Role", a["roleDefinitionName"]}, {"Scope", a["scope"]}}, a["scope"] != nil
		})
	})

	var ids []string
	var dq assignmentQuery
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete role assignments",
		Example: `  pglink role assignment delete --ids /subscriptions/SUBSCRIPTION_ID/providers/Microsoft.Authorization/roleAssignments/ASSIGNMENT_GUID
  pglink role assignment delete --assignee APP_ID --role Reader --scope /subscriptions/SUBSCRIPTION_ID`,
		Args: cobra.ArbitraryArgs,
	}
	del.Flags().StringArrayVar(&ids, "ids", nil, "space-separated ids of role assignments")
	dq.flags(del, false)
	del.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		ids, err := spaceList(cmd, "ids", ids)
		if err != nil {
			return err
		}
		if len(ids) > 0 && (dq.assignee != "" || dq.objectID != "" || dq.role != "" || dq.scope != "" || dq.group != "") {
			return usagef("give --ids, or --assignee, --role and --scope; not both")
		}
		if len(ids) == 0 && dq.assignee == "" && dq.objectID == "" && dq.role == "" && dq.scope == "" && dq.group == "" {
			return usagef("please provide at least one of these arguments: --ids, --assignee, --role, --resource-group, --scope")
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := s.assignments()
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			found, err := dq.search(ctx, s)
			if err != nil {
				return err
			}
			for _, a := range found {
				ids = append(ids, deref(a.ID))
			}
			if len(ids) == 0 {
				e.warn("No matched assignments were found to delete")
				return nil
			}
		}
		for _, id := range ids {
			if _, err := client.DeleteByID(ctx, id, nil); err != nil {
				return fmt.Errorf("delete role assignment %s: %w", id, err)
			}
		}
		return nil
	})
	return group("assignment", "Manage role assignments", create, list, del)
}

// assign creates a role assignment of role to principal at scope.
func (s *session) assign(ctx context.Context, principal, principalType, role, scope string) (*armauthorization.RoleAssignment, error) {
	roleID, err := s.resolveRole(ctx, role, scope)
	if err != nil {
		return nil, err
	}
	client, err := s.assignments()
	if err != nil {
		return nil, err
	}
	props := &armauthorization.RoleAssignmentProperties{PrincipalID: &principal, RoleDefinitionID: &roleID}
	if principalType != "" {
		props.PrincipalType = ptr(armauthorization.PrincipalType(principalType))
	}
	resp, err := client.Create(ctx, scope, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{Properties: props}, nil)
	if err != nil {
		return nil, fmt.Errorf("assign role %s to %s at %s: %w", role, principal, scope, err)
	}
	return &resp.RoleAssignment, nil
}

// named describes assignments with the names of their roles and principals, as az's list
// does; a name that cannot be looked up is left empty.
func (s *session) named(ctx context.Context, found []*armauthorization.RoleAssignment) []roleAssignment {
	roles := map[string]string{}
	if defs, err := s.searchDefinitions(ctx, s.subscriptionScope(), "", false); err == nil {
		for _, d := range defs {
			if d.Properties != nil {
				roles[strings.ToLower(deref(d.Name))] = deref(d.Properties.RoleName)
			}
		}
	}
	principals := map[string]string{}
	out := make([]roleAssignment, 0, len(found))
	for _, a := range found {
		r := assignmentOut(a)
		r.RoleDefinitionName = ptr(roles[strings.ToLower(lastSegment(r.RoleDefinitionID))])
		name, ok := principals[r.PrincipalID]
		if !ok {
			name = s.principalName(ctx, r.PrincipalID)
			principals[r.PrincipalID] = name
		}
		r.PrincipalName = &name
		out = append(out, r)
	}
	return out
}
