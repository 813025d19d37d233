package authorization

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pglink/pglink/internal/resource"
)

func TestAssignmentLimits(t *testing.T) {
	const sub = "00000000-0000-4000-8000-000000000001"
	fill := func(scope string, n int) []stored[Assignment] {
		var as []stored[Assignment]
		for i := range n {
			as = append(as, stored[Assignment]{doc: Assignment{ID: fmt.Sprintf("%s/providers/Microsoft.Authorization/roleAssignments/%d", scope, i)}})
		}
		return as
	}
	subScope, _ := resource.Parse("/subscriptions/" + sub + "/resourceGroups/rg")
	other, _ := resource.Parse("/subscriptions/00000000-0000-4000-8000-000000000002")
	for _, tt := range []struct {
		name   string
		as     []stored[Assignment]
		scope  resource.ID
		refuse bool
	}{
		{"subscription below its limit", fill("/subscriptions/"+sub, MaxAssignmentsPerSubscription-1), subScope, false},
		{"subscription at its limit", fill("/subscriptions/"+sub+"/resourceGroups/x", MaxAssignmentsPerSubscription), subScope, true},
		{"another subscription's are not counted", fill("/subscriptions/"+sub, MaxAssignmentsPerSubscription), other, false},
		{"root below its limit", fill("", MaxAssignmentsAtRoot-1), resource.ID{}, false},
		{"root at its limit", fill("", MaxAssignmentsAtRoot), resource.ID{}, true},
	} {
		err := checkAssignmentLimit(tt.as, tt.scope)
		var re *resource.Error
		if refused := errors.As(err, &re) && re.Code == "RoleAssignmentLimitExceeded"; refused != tt.refuse {
			t.Errorf("%s: checkAssignmentLimit = %v; want refused %v", tt.name, err, tt.refuse)
		}
	}
}
