// Package activity records the activity log: who did what to which resource, when, and how it
// ended, and renders it in the shape of Azure's activity log API
// (Microsoft.Insights/eventtypes/management/values).
package activity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Entry is one thing that happened.
type Entry struct {
	Time           time.Time
	TenantID       string
	Caller         string // UPN of a user or client id of a service principal
	CallerObjectID string
	Operation      string // the RBAC action, e.g. "Microsoft.DBforPostgreSQL/flexibleServers/write"
	Scope          string // the resource ID
	Status         string // "Started", "Accepted", "Succeeded" or "Failed"
	StatusCode     string // HTTP status text, e.g. "Created", "Conflict"
	CorrelationID  string
	OperationID    string // the long-running operation, if any
	Description    string // e.g. the reason given when approving a connection
	ErrorCode      string
	ErrorMessage   string
	// Subscription is the subscription of an event whose Scope names none (a directory
	// change); events about resources belong to the resource's subscription.
	Subscription string
}

// Value is a localizable string in Azure's activity log shape.
type Value struct {
	Value          string `json:"value"`
	LocalizedValue string `json:"localizedValue"`
}

func v(s string) Value { return Value{Value: s, LocalizedValue: s} }

// Event is an activity log event as Azure serves it.
type Event struct {
	Authorization        map[string]string `json:"authorization"`
	Caller               string            `json:"caller"`
	Channels             string            `json:"channels"`
	Claims               map[string]string `json:"claims"`
	CorrelationID        string            `json:"correlationId"`
	Description          string            `json:"description"`
	EventDataID          string            `json:"eventDataId"`
	EventName            Value             `json:"eventName"`
	Category             Value             `json:"category"`
	EventTimestamp       time.Time         `json:"eventTimestamp"`
	ID                   string            `json:"id"`
	Level                string            `json:"level"`
	OperationID          string            `json:"operationId"`
	OperationName        Value             `json:"operationName"`
	ResourceGroupName    string            `json:"resourceGroupName,omitempty"`
	ResourceProviderName Value             `json:"resourceProviderName"`
	ResourceType         Value             `json:"resourceType"`
	ResourceID           string            `json:"resourceId"`
	Status               Value             `json:"status"`
	SubStatus            Value             `json:"subStatus"`
	SubmissionTimestamp  time.Time         `json:"submissionTimestamp"`
	SubscriptionID       string            `json:"subscriptionId"`
	TenantID             string            `json:"tenantId"`
	Properties           map[string]string `json:"properties"`
}

// Build turns an entry into the stored event.
func Build(e Entry) (store.Event, error) {
	id, err := resource.Parse(e.Scope)
	if err != nil {
		// An extension resource below another resource ({resource}/providers/{ns}/{type}/{name})
		// belongs to that resource's subscription and group.
		if i := strings.LastIndex(strings.ToLower(e.Scope), "/providers/"); i > 0 {
			id, _ = resource.Parse(e.Scope[:i])
		} else {
			id = resource.ID{}
		}
	}
	if id.Subscription == "" {
		id.Subscription = e.Subscription
	}
	var rnd [16]byte
	rand.Read(rnd[:])
	dataID := hex.EncodeToString(rnd[:])
	level := "Informational"
	if e.Status == "Failed" {
		level = "Error"
	}
	props := map[string]string{"statusCode": e.StatusCode}
	if e.Description != "" {
		props["description"] = e.Description
	}
	if e.ErrorCode != "" {
		props["statusMessage"] = fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, e.ErrorCode, e.ErrorMessage)
	}
	ev := Event{
		Authorization:        map[string]string{"action": e.Operation, "scope": e.Scope},
		Caller:               e.Caller,
		Channels:             "Operation",
		Claims:               map[string]string{"http://schemas.microsoft.com/identity/claims/objectidentifier": e.CallerObjectID},
		CorrelationID:        e.CorrelationID,
		Description:          e.Description,
		EventDataID:          dataID,
		EventName:            Value{Value: "EndRequest", LocalizedValue: "End request"},
		Category:             v("Administrative"),
		EventTimestamp:       e.Time.UTC(),
		ID:                   fmt.Sprintf("%s/events/%s/ticks/%d", e.Scope, dataID, e.Time.UnixNano()/100),
		Level:                level,
		OperationID:          e.OperationID,
		OperationName:        v(e.Operation),
		ResourceGroupName:    id.ResourceGroup,
		ResourceProviderName: v(providerOf(e.Operation)),
		ResourceType:         v(id.Type()),
		ResourceID:           e.Scope,
		Status:               v(e.Status),
		SubStatus:            v(e.StatusCode),
		SubmissionTimestamp:  e.Time.UTC(),
		SubscriptionID:       id.Subscription,
		TenantID:             e.TenantID,
		Properties:           props,
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.Event{}, fmt.Errorf("encode activity event: %w", err)
	}
	return store.Event{Time: e.Time.UTC(), Subscription: strings.ToLower(id.Subscription), ResourceID: e.Scope,
		ResourceGroup: id.ResourceGroup, Caller: e.Caller, CorrelationID: e.CorrelationID,
		Provider: providerOf(e.Operation), Status: e.Status, Body: body}, nil
}

func providerOf(op string) string {
	ns, _, _ := strings.Cut(op, "/")
	return ns
}

// Record appends e to the activity log in its own transaction.
func Record(ctx context.Context, st store.Store, e Entry) error {
	ev, err := Build(e)
	if err != nil {
		return err
	}
	return st.Update(ctx, func(tx store.Tx) error { return tx.AppendEvent(ctx, ev) })
}
