package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// GroupDeleting is the provisioningState of a resource group whose delete is in progress.
const GroupDeleting = "Deleting"

// GroupBeingDeleted is Azure's 409 ResourceGroupBeingDeleted for a write into group.
func GroupBeingDeleted(group string) *resource.Error {
	return resource.Errorf(resource.Conflict, "ResourceGroupBeingDeleted",
		"The resource group '%s' is in deprovisioning state and cannot perform this operation.", group)
}

// CheckGroupWritable returns nil if the resource group that holds id exists and is not being
// deleted (or id is not inside a resource group), 404 ResourceGroupNotFound if it does not
// exist, and 409 ResourceGroupBeingDeleted if its delete is in progress. Writers call it
// inside their transaction for every group they write into, so a write cannot slip into a
// group whose delete has begun.
func CheckGroupWritable(ctx context.Context, tx store.Tx, id resource.ID) error {
	if id.Subscription == "" || id.ResourceGroup == "" {
		return nil
	}
	rg := id.ResourceGroupID()
	r, err := tx.Get(ctx, rg.Key())
	if errors.Is(err, store.ErrNotFound) {
		return resource.NotFoundError(rg)
	}
	if err != nil {
		return fmt.Errorf("read resource group %s: %w", rg, err)
	}
	var g struct {
		Name       string `json:"name"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(r.Body, &g); err != nil {
		return fmt.Errorf("decode resource group %s: %w", rg, err)
	}
	if g.Properties.ProvisioningState == GroupDeleting {
		return GroupBeingDeleted(id.ResourceGroup)
	}
	return nil
}
