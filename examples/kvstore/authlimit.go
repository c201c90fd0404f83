package main

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// authLimiter throttles password guessing, per remote address: each
// address has a bucket of burst failed attempts that refills at rate per
// second. A client may try a password (RESP AUTH, or an HTTP request with a
// token) while its address has a whole attempt left; each failure takes
// one, and may take the bucket into debt (down to -burst) when several
// attempts were checked at once, so that over any window an address gets
// at most burst + rate*window + (attempts in flight at once) guesses
// checked. Other addresses are not affected. A success costs nothing.
//
// IPv6 addresses are grouped by /64, the block one host usually holds. At
// most maxAddrs addresses are tracked; beyond that, addresses whose
// bucket has refilled are forgotten, and if none has, the new ones share
// one bucket (failing closed under an address-spraying attack).
type authLimiter struct {
	rate, burst float64
	maxAddrs    int
	now         func() time.Time

	mu        sync.Mutex
	m         map[netip.Addr]*authBucket
	overflow  authBucket
	lastSweep time.Time
}

type authBucket struct {
	tokens float64
	at     time.Time
}

// newAuthLimiter allows perMinute failed attempts a minute per address,
// in a burst of as many.
func newAuthLimiter(perMinute int) *authLimiter {
	l := &authLimiter{
		rate: float64(perMinute) / 60, burst: float64(perMinute), maxAddrs: 10000,
		now: time.Now, m: map[netip.Addr]*authBucket{},
	}
	l.overflow = authBucket{tokens: l.burst, at: l.now()}
	return l
}

// limiterKey returns the address a remote "host:port" is throttled as.
func limiterKey(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{} // unknown: all such share one bucket
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a
}

// refill brings b up to date at now.
func (l *authLimiter) refill(b *authBucket, now time.Time) {
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
}

// bucket returns the bucket of key, refilled; l.mu is held.
func (l *authLimiter) bucket(key netip.Addr, now time.Time) *authBucket {
	b := l.m[key]
	if b == nil {
		if len(l.m) >= l.maxAddrs && now.Sub(l.lastSweep) >= time.Second {
			l.lastSweep = now // at most one sweep a second
			for k, o := range l.m {
				if l.refill(o, now); o.tokens >= l.burst {
					delete(l.m, k)
				}
			}
		}
		if len(l.m) >= l.maxAddrs {
			b = &l.overflow
		} else {
			b = &authBucket{tokens: l.burst, at: now}
			l.m[key] = b
		}
	}
	l.refill(b, now)
	return b
}

// allow reports whether remote may have a password checked now.
func (l *authLimiter) allow(remote string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bucket(limiterKey(remote), l.now()).tokens >= 1
}

// fail charges remote one failed attempt.
func (l *authLimiter) fail(remote string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(limiterKey(remote), l.now())
	b.tokens = max(-l.burst, b.tokens-1)
}

// remoteOf returns a connection's remote address as "host:port".
func remoteOf(c net.Conn) string { return c.RemoteAddr().String() }
