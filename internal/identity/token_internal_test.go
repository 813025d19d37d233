package identity

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// unavailableErr stands for the store's ErrUnavailable, which identity recognizes by its
// Unavailable method without importing the store.
type unavailableErr struct{}

func (unavailableErr) Error() string     { return "store unavailable" }
func (unavailableErr) Unavailable() bool { return true }

// TestServerErrorWhileStoreUnavailable: a token request that fails because the store cannot be
// reached is 503 with Retry-After, not 500.
func TestServerErrorWhileStoreUnavailable(t *testing.T) {
	if e := errServer(fmt.Errorf("start session: %w", unavailableErr{})); e.status != http.StatusServiceUnavailable || e.retryAfter <= 0 {
		t.Errorf("errServer(unavailable) = %d, Retry-After %v; want 503 with Retry-After", e.status, e.retryAfter)
	}
	if e := errServer(errors.New("boom")); e.status != http.StatusInternalServerError {
		t.Errorf("errServer(boom) = %d; want 500", e.status)
	}
}
