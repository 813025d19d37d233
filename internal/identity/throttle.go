package identity

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SignInLimits throttle failed sign-ins (a wrong password or client secret) and bound the
// work of checking credentials. Zero fields take the defaults of DefaultSignInLimits.
//
// Failures are counted per login at one client address, per client address and per login.
// Each count decays steadily, by Limit over a Window: Limit failures in quick succession lock
// the key for Window/Limit (one failure's worth of decay), and each failure at the edge of
// the lock renews it; a client that stays under Limit failures a Window is never locked. A locked sign-in is refused before the credentials are
// checked: no slow hash is computed for it.
type SignInLimits struct {
	// Window is the period over which failures are counted.
	Window time.Duration
	// PerLoginAddress is how many failures one login may have from one address in a Window
	// (Microsoft Entra smart lockout's default threshold is 10).
	PerLoginAddress int
	// PerAddress is how many failures one client address may have, over all logins.
	PerAddress int
	// PerLogin is how many failures one login may have, over all addresses. Keep it above
	// PerLoginAddress so that one address cannot lock a login out for everyone else.
	PerLogin int
	// MaxKeys bounds the memory of the counters: at most this many keys are tracked.
	MaxKeys int
	// MaxConcurrentChecks bounds the credential checks (slow hashes) run at once, and
	// MaxWaitingChecks the requests waiting for one; more are answered 429 with Retry-After.
	MaxConcurrentChecks int
	MaxWaitingChecks    int
}

// DefaultSignInLimits are the limits an Issuer uses unless told otherwise.
func DefaultSignInLimits() SignInLimits {
	return SignInLimits{
		Window:              5 * time.Minute,
		PerLoginAddress:     10,
		PerAddress:          30,
		PerLogin:            50,
		MaxKeys:             10000,
		MaxConcurrentChecks: max(1, runtime.GOMAXPROCS(0)/2),
		MaxWaitingChecks:    64,
	}
}

func (l SignInLimits) withDefaults() SignInLimits {
	d := DefaultSignInLimits()
	if l.Window <= 0 {
		l.Window = d.Window
	}
	for _, f := range []struct {
		v *int
		d int
	}{
		{&l.PerLoginAddress, d.PerLoginAddress}, {&l.PerAddress, d.PerAddress}, {&l.PerLogin, d.PerLogin},
		{&l.MaxKeys, d.MaxKeys}, {&l.MaxConcurrentChecks, d.MaxConcurrentChecks}, {&l.MaxWaitingChecks, d.MaxWaitingChecks},
	} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	return l
}

// maxCheckWait is how long a sign-in waits for a free credential check before 429.
const maxCheckWait = 10 * time.Second

// throttle counts failed sign-ins and bounds concurrent credential checks. It is safe for
// concurrent use.
type throttle struct {
	limits SignInLimits
	now    func() time.Time
	slots  chan struct{} // one token per running credential check

	mu      sync.Mutex
	counts  map[string]*failures // by key (see keys); guarded by mu
	waiting int                  // requests waiting for a slot; guarded by mu
}

// failures is a decaying count of failed sign-ins.
type failures struct {
	n    float64   // failures, as of at
	at   time.Time // when n was last updated
	rate float64   // decay per second: limit / window
}

// value returns the count at t.
func (f *failures) value(t time.Time) float64 {
	return math.Max(0, f.n-t.Sub(f.at).Seconds()*f.rate)
}

func newThrottle(l SignInLimits, now func() time.Time) *throttle {
	l = l.withDefaults()
	return &throttle{limits: l, now: now, slots: make(chan struct{}, l.MaxConcurrentChecks), counts: map[string]*failures{}}
}

// key is one counter and its limit.
type key struct {
	name  string
	limit int
}

// keys returns the counters a sign-in of login from addr touches. Logins are case-insensitive.
func (th *throttle) keys(login, addr string) []key {
	login = strings.ToLower(login)
	return []key{
		{"la\x00" + login + "\x00" + addr, th.limits.PerLoginAddress},
		{"a\x00" + addr, th.limits.PerAddress},
		{"l\x00" + login, th.limits.PerLogin},
	}
}

// locked reports whether a sign-in of login from addr must be refused, and for how long.
func (th *throttle) locked(login, addr string) (time.Duration, bool) {
	t := th.now()
	th.mu.Lock()
	defer th.mu.Unlock()
	var wait time.Duration
	for _, k := range th.keys(login, addr) {
		f := th.counts[k.name]
		if f == nil {
			continue
		}
		// Limit failures in quick succession leave a count a little under Limit (it decays
		// meanwhile): the key is locked while the count exceeds Limit-1, that is until one
		// failure's worth has decayed.
		if v, bar := f.value(t), float64(k.limit-1); v > bar {
			wait = max(wait, time.Duration((v-bar)/f.rate*float64(time.Second)))
		}
	}
	return wait, wait > 0
}

// fail records a failed sign-in of login from addr.
func (th *throttle) fail(login, addr string) {
	t := th.now()
	th.mu.Lock()
	defer th.mu.Unlock()
	for _, k := range th.keys(login, addr) {
		f := th.counts[k.name]
		if f == nil {
			th.makeRoom(t)
			f = &failures{rate: float64(k.limit) / th.limits.Window.Seconds()}
			th.counts[k.name] = f
		}
		f.n, f.at = f.value(t)+1, t
	}
}

// succeed forgets the failures of login at addr (the other counters keep theirs).
func (th *throttle) succeed(login, addr string) {
	th.mu.Lock()
	defer th.mu.Unlock()
	delete(th.counts, th.keys(login, addr)[0].name)
}

// makeRoom keeps the counters under MaxKeys: when full, it drops those that have decayed to
// nothing, then, if still full, the lowest of a few picked at random (map order), so that a
// flood of new keys does not wash out the counts that lock someone. Called with mu held.
func (th *throttle) makeRoom(t time.Time) {
	if len(th.counts) < th.limits.MaxKeys {
		return
	}
	for k, f := range th.counts {
		if f.value(t) == 0 {
			delete(th.counts, k)
		}
	}
	for len(th.counts) >= th.limits.MaxKeys {
		const sample = 8
		var (
			victim string
			low    = math.Inf(1)
			n      int
		)
		for k, f := range th.counts {
			if v := f.value(t); v < low {
				victim, low = k, v
			}
			if n++; n == sample {
				break
			}
		}
		delete(th.counts, victim)
	}
}

// acquire waits for a free credential check. It returns false, without waiting, when too
// many requests wait already, and false when ctx ends or maxCheckWait passes first.
func (th *throttle) acquire(ctx context.Context) (release func(), ok bool) {
	release = func() { <-th.slots }
	select {
	case th.slots <- struct{}{}:
		return release, true
	default:
	}
	th.mu.Lock()
	if th.waiting >= th.limits.MaxWaitingChecks {
		th.mu.Unlock()
		return nil, false
	}
	th.waiting++
	th.mu.Unlock()
	defer func() {
		th.mu.Lock()
		th.waiting--
		th.mu.Unlock()
	}()
	timer := time.NewTimer(maxCheckWait)
	defer timer.Stop()
	select {
	case th.slots <- struct{}{}:
		return release, true
	case <-ctx.Done():
	case <-timer.C:
	}
	return nil, false
}

// throttled is why a sign-in was refused before its credentials were checked.
type throttled struct {
	wait time.Duration // locked: how long until the lock lifts
	busy bool          // no credential check was free
}

func (e *throttled) Error() string {
	if e.busy {
		return "sign-in refused: too many credential checks in progress"
	}
	return fmt.Sprintf("sign-in refused: locked for %v after too many failures", e.wait)
}

// checkCredentials runs check, the credential check of a sign-in of login from addr, under the
// throttle. A locked sign-in is refused with a *throttled before check runs, and so is one
// that finds no free check slot; a check that fails with ErrInvalidCredentials is counted, a
// check that succeeds clears the failures of login at addr.
func (th *throttle) checkCredentials(ctx context.Context, login, addr string, check func() (Principal, error)) (Principal, error) {
	if d, locked := th.locked(login, addr); locked {
		return Principal{}, &throttled{wait: d}
	}
	release, ok := th.acquire(ctx)
	if !ok {
		return Principal{}, &throttled{busy: true}
	}
	p, err := check()
	release()
	switch {
	case err == nil:
		th.succeed(login, addr)
	case errors.Is(err, ErrInvalidCredentials):
		th.fail(login, addr)
	}
	return p, err
}

// clientAddress returns the IP address of r's client (the TCP peer; forwarded headers are not
// trusted).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter formats d as a Retry-After value: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// lockedMessage says that sign-ins are refused and for how long.
func lockedMessage(what string, d time.Duration) string {
	return fmt.Sprintf("The %s is locked because of too many sign-in attempts with wrong credentials. Try again in %s seconds.", what, retryAfter(d))
}

// errThrottled is the token endpoint's answer to a throttled sign-in. A locked sign-in gets
// Microsoft Entra's smart lockout error, AADSTS50053, with the given OAuth code and status,
// which clients do not retry; a busy one gets 429 with Retry-After, which they do.
func (i *Issuer) errThrottled(t *throttled, code string, status int, what string) *aadError {
	if t.busy {
		return errBusy(t)
	}
	return &aadError{status: status, code: code, aadsts: 50053, retryAfter: t.wait, cause: t, msg: lockedMessage(what, t.wait)}
}

// errBusy is the token endpoint's answer when no credential check is free: 429 with
// Retry-After, which clients retry.
func errBusy(cause error) *aadError {
	return &aadError{status: http.StatusTooManyRequests, code: "temporarily_unavailable", aadsts: 90033, retryAfter: time.Second,
		msg: "Too many sign-ins are being checked at once. Retry after the time in the Retry-After header.", cause: cause}
}
