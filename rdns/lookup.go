package rdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// addrLookuper is the one method of *net.Resolver the cache uses; tests fake it.
type addrLookuper interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// resolve asks r for the name of a, giving up after timeout. It returns the
// first name without its trailing dot. A missing name wraps ErrNotFound and
// an expired deadline wraps ErrTimeout, so callers can tell them apart with
// errors.Is.
func resolve(ctx context.Context, r addrLookuper, timeout time.Duration, a netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	names, err := r.LookupAddr(ctx, a.String())
	if err != nil {
		var dnsErr *net.DNSError
		isDNS := errors.As(err, &dnsErr)
		switch {
		case isDNS && dnsErr.IsNotFound:
			return "", fmt.Errorf("rdns: lookup %s: %w: %w", a, ErrNotFound, err)
		case errors.Is(ctx.Err(), context.DeadlineExceeded), isDNS && dnsErr.IsTimeout:
			return "", fmt.Errorf("rdns: lookup %s: %w: %w", a, ErrTimeout, err)
		}
		return "", fmt.Errorf("rdns: lookup %s: %w", a, err)
	}
	for _, n := range names {
		if n = strings.TrimSuffix(n, "."); n != "" {
			return n, nil
		}
	}
	return "", fmt.Errorf("rdns: lookup %s: %w", a, ErrNotFound)
}
