package identity

import (
	"fmt"
	"testing"
	"time"
)

// TestThrottleKeepsLocksUnderAFlood: the counters never exceed MaxKeys, and a flood of
// one-off failures from other addresses does not evict a lock.
func TestThrottleKeepsLocksUnderAFlood(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	th := newThrottle(SignInLimits{Window: time.Minute, PerLoginAddress: 3, PerAddress: 3, PerLogin: 1000, MaxKeys: 50}, func() time.Time { return now })
	for range 3 {
		th.fail("victim", "10.0.0.1")
	}
	if _, locked := th.locked("victim", "10.0.0.1"); !locked {
		t.Fatalf("after 3 failures: not locked")
	}
	for n := range 2000 {
		th.fail(fmt.Sprintf("u%d", n), fmt.Sprintf("10.1.%d.%d", n/250, n%250))
		if len(th.counts) > 50 {
			t.Fatalf("after %d failures: %d counters; want at most 50", n+1, len(th.counts))
		}
	}
	if _, locked := th.locked("victim", "10.0.0.1"); !locked {
		t.Errorf("a flood of other failures lifted the lock")
	}
}
