package arm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// Polling endpoints of long-running operations, per provider namespace:
//
//	/subscriptions/{sub}/providers/{ns}/locations/{loc}/azureAsyncOperation/{opId}  status body, always 200
//	/subscriptions/{sub}/providers/{ns}/locations/{loc}/operationResults/{opId}     202 until done, then the result
const (
	asyncOperationType = "locations/azureAsyncOperation"
	operationResults   = "locations/operationResults"
)

// OperationStatus is the body served at an Azure-AsyncOperation URL.
type OperationStatus struct {
	ID              string       `json:"id"`
	Name            string       `json:"name"`
	ResourceID      string       `json:"resourceId,omitempty"`
	Status          string       `json:"status"`
	StartTime       time.Time    `json:"startTime"`
	EndTime         *time.Time   `json:"endTime,omitempty"`
	PercentComplete float64      `json:"percentComplete"`
	Error           *ErrorDetail `json:"error,omitempty"`
}

// RegisterOperationStatus serves the polling endpoints of namespace ns.
func (s *Server) RegisterOperationStatus(ns string, versions []string) {
	s.Register(
		Type{Name: ns + "/" + asyncOperationType, APIVersions: versions, Handler: s.serveAsyncOperation, ownAuthz: true},
		Type{Name: ns + "/" + operationResults, APIVersions: versions, Handler: s.serveOperationResult, ownAuthz: true},
	)
}

func pollingURL(endpoint string, op store.Operation, kind, apiVersion string) string {
	id, _ := resource.Parse(op.ResourceID)
	loc := op.Location
	if loc == "" {
		loc = "global"
	}
	return fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s/%s/%s?api-version=%s",
		endpoint, id.Subscription, id.Namespace, url.PathEscape(strings.ToLower(strings.ReplaceAll(loc, " ", ""))),
		kind, op.ID, url.QueryEscape(apiVersion))
}

func (s *Server) setPollingHeaders(h http.Header, op store.Operation, apiVersion string) {
	h.Set("Azure-AsyncOperation", pollingURL(s.cfg.Endpoint, op, "azureAsyncOperation", apiVersion))
	h.Set("Location", pollingURL(s.cfg.Endpoint, op, "operationResults", apiVersion))
	h.Set("Retry-After", "1")
}

// loadOperation finds the operation a polling URL names, checks it belongs to the URL's
// subscription and namespace, and that the caller may see it (see authorizeOperation).
func (s *Server) loadOperation(ctx context.Context, req *Request) (store.Operation, error) {
	id := req.Target.ID
	var op store.Operation
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		op, err = tx.Operation(ctx, id.Name())
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return op, resource.Errorf(resource.NotFound, "OperationNotFound", "The operation '%s' could not be found.", id.Name())
	}
	if err != nil {
		return op, fmt.Errorf("load operation %s: %w", id.Name(), err)
	}
	rid, _ := resource.Parse(op.ResourceID)
	if !strings.EqualFold(rid.Subscription, id.Subscription) || !strings.EqualFold(rid.Namespace, id.Namespace) {
		return op, resource.Errorf(resource.NotFound, "OperationNotFound", "The operation '%s' could not be found.", id.Name())
	}
	return op, s.authorizeOperation(ctx, req, op)
}

func (s *Server) serveAsyncOperation(ctx context.Context, req *Request) (*Response, error) {
	if req.Method != http.MethodGet {
		return nil, methodNotAllowed(req)
	}
	op, err := s.loadOperation(ctx, req)
	if err != nil {
		return nil, err
	}
	st := OperationStatus{
		ID:         req.Target.ID.String(),
		Name:       op.ID,
		ResourceID: op.ResourceID,
		Status:     op.Status,
		StartTime:  op.Created.UTC(),
	}
	if !s.settled(ctx, op, time.Second) {
		st.Status = store.OpInProgress // done in the store, not yet in effect
	} else if op.Done() {
		end := op.Updated.UTC()
		st.EndTime = &end
		st.PercentComplete = 100
	}
	if op.Status == store.OpFailed || op.Status == store.OpCanceled {
		e := DecodeError(op.Error)
		st.Error = &ErrorDetail{Code: e.Code, Message: e.Message, Target: e.Target}
	}
	return &Response{Body: st}, nil
}

func (s *Server) serveOperationResult(ctx context.Context, req *Request) (*Response, error) {
	if req.Method != http.MethodGet {
		return nil, methodNotAllowed(req)
	}
	op, err := s.loadOperation(ctx, req)
	if err != nil {
		return nil, err
	}
	switch {
	case !s.settled(ctx, op, time.Second):
		return &Response{Status: http.StatusAccepted, pollAgain: &op}, nil
	case op.Status != store.OpSucceeded:
		return nil, DecodeError(op.Error)
	case op.Method == http.MethodPut || op.Method == http.MethodPatch:
		rid, err := resource.Parse(op.ResourceID)
		if err != nil {
			return nil, err
		}
		typ := s.types[strings.ToLower(rid.Type())]
		if typ == nil {
			return &Response{Status: http.StatusNoContent}, nil
		}
		get := *req
		get.Target = Target{ID: rid, Type: rid.Type()}
		get.APIVersion = typ.APIVersions[len(typ.APIVersions)-1]
		resp, err := typ.Handler(ctx, &get)
		if resource.KindOf(err) == resource.NotFound {
			return &Response{Status: http.StatusNoContent}, nil
		}
		if err != nil {
			return nil, err
		}
		return &Response{Body: resp.Body}, nil
	}
	return &Response{Status: http.StatusNoContent}, nil
}

func methodNotAllowed(req *Request) error {
	return resource.Errorf(resource.Invalid, "MethodNotAllowed",
		"The HTTP method '%s' is not supported for the resource type '%s'.", req.Method, req.Target.Type)
}

// MethodNotAllowed is the error for a method a resource type does not support.
func MethodNotAllowed(req *Request) error { return methodNotAllowed(req) }
