package arm

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/pglink/pglink/internal/resource"
	"github.com/pglink/pglink/internal/store"
)

// statusOf is the one table from error kind to HTTP status.
var statusOf = map[resource.Kind]int{
	resource.Internal:           http.StatusInternalServerError,
	resource.Invalid:            http.StatusBadRequest,
	resource.Unauthenticated:    http.StatusUnauthorized,
	resource.Forbidden:          http.StatusForbidden,
	resource.NotFound:           http.StatusNotFound,
	resource.Conflict:           http.StatusConflict,
	resource.PreconditionFailed: http.StatusPreconditionFailed,
	resource.TooManyRequests:    http.StatusTooManyRequests,
	resource.TooLarge:           http.StatusRequestEntityTooLarge,
	resource.Unavailable:        http.StatusServiceUnavailable,
}

// KindOfStatus is the error kind whose answers have HTTP status status (statusOf read
// backwards); Internal for a status no kind has.
func KindOfStatus(status int) resource.Kind {
	for k, st := range statusOf {
		if st == status {
			return k
		}
	}
	return resource.Internal
}

// ErrorBody is Azure's error response: {"error":{"code","message","target"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of an ErrorBody, also used in operation status bodies.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

// DecodeError reads the error a failed operation stored (see operation.Fail).
func DecodeError(b []byte) *resource.Error {
	var e resource.Error
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
		return resource.Errorf(resource.Internal, "InternalServerError", "The operation failed.")
	}
	return &e
}

// ToUserError turns any error into the *resource.Error a user sees. Errors that carry no
// *resource.Error become InternalServerError with the request id to quote.
func ToUserError(err error, requestID string) *resource.Error {
	if e, ok := resource.AsError(err); ok {
		return e
	}
	if errors.Is(err, store.ErrUnavailable) {
		return resource.Errorf(resource.Unavailable, "ServiceUnavailable",
			"pglink cannot reach its store right now. Retry after the time in Retry-After.")
	}
	if errors.Is(err, store.ErrConflict) {
		return resource.Errorf(resource.Conflict, "Conflict",
			"The resource was changed by another request. Read it again and retry.")
	}
	return resource.Errorf(resource.Internal, "InternalServerError",
		"An unexpected error occurred while processing the request. Tracking ID: '%s'", requestID)
}

// writeError writes err as an ARM error response; internal detail goes to the log only.
func writeError(w http.ResponseWriter, log *slog.Logger, requestID string, err error) int {
	e := ToUserError(err, requestID)
	if e.Kind == resource.Internal {
		log.Error("request failed", "request_id", requestID, "err", err)
	}
	if e.Kind == resource.Unavailable {
		log.Warn("request refused: a part is unavailable", "request_id", requestID, "err", err)
	}
	status := statusOf[e.Kind]
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("x-ms-error-code", e.Code)
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message, Target: e.Target}})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}
