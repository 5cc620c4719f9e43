package issuer

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/tollgate/tollgate/limit"
)

// LoginLimits are the brute-force limits of the password grant: attempts
// per login name and per client IP. A nil limiter does not limit.
type LoginLimits struct {
	// PerUser is keyed by the login as typed (lower-cased, trimmed),
	// whether or not such a user exists, so a limited name answers the same
	// either way.
	PerUser limit.Limiter
	// PerIP is keyed by the client's IP (see Config.TrustedProxies).
	PerIP limit.Limiter
}

// WithLoginLimits turns the brute-force limits on.
func WithLoginLimits(l LoginLimits) Option { return func(i *Issuer) { i.limits = loginLimits{l} } }

type loginLimits struct{ LoginLimits }

// take takes one attempt for login from ip. release gives it back when
// the login succeeded, so a user who knows the password is never locked
// out by their own logins. A limit reached is ErrTooManyRequests with the
// wait until the next attempt.
func (l loginLimits) take(ctx context.Context, login string, ip netip.Addr) (release func(ok bool), err error) {
	type taken struct {
		lim limit.Limiter
		key string
	}
	var done []taken
	release = func(ok bool) {
		if ok {
			for _, t := range done {
				t.lim.Give(ctx, t.key)
			}
		}
	}
	for _, c := range []struct {
		name string
		lim  limit.Limiter
		key  string
	}{
		{"user", l.PerUser, "user:" + strings.ToLower(strings.TrimSpace(login))},
		{"ip", l.PerIP, "ip:" + ip.String()},
	} {
		if c.lim == nil || (c.name == "ip" && !ip.IsValid()) {
			continue
		}
		ok, wait, err := c.lim.Take(ctx, c.key)
		if err != nil {
			// A limiter that cannot answer (its store is down) refuses:
			// guessing must not get through while it is down.
			release(true)
			return func(bool) {}, refuse(ErrBusy, "the login limiter is unavailable").because(err)
		}
		if !ok {
			release(true) // give back what this attempt took before
			return func(bool) {}, refuse(ErrTooManyRequests, "too many login attempts; retry later").
				retryAfter(wait).reason("throttled_" + c.name)
		}
		done = append(done, taken{c.lim, c.key})
	}
	return release, nil
}

// retryAfterSeconds rounds a wait up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
