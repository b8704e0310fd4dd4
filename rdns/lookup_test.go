package rdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeLookuper answers LookupAddr with fixed values, or waits for the
// context when block is set.
type fakeLookuper struct {
	names []string
	err   error
	block bool
}

func (f fakeLookuper) LookupAddr(ctx context.Context, _ string) ([]string, error) {
	if f.block {
		<-ctx.Done()
		return nil, &net.DNSError{Err: ctx.Err().Error(), UnwrapErr: ctx.Err()}
	}
	return f.names, f.err
}

func TestResolve(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		r       fakeLookuper
		want    string
		wantErr error // nil: no error
	}{
		{name: "strips trailing dot", r: fakeLookuper{names: []string{"host.example."}}, want: "host.example"},
		{name: "first answer", r: fakeLookuper{names: []string{"a.example.", "b.example."}}, want: "a.example"},
		{name: "skips empty", r: fakeLookuper{names: []string{".", "b.example."}}, want: "b.example"},
		{name: "no answers", r: fakeLookuper{}, wantErr: ErrNotFound},
		{name: "nxdomain", r: fakeLookuper{err: &net.DNSError{Err: "no such host", IsNotFound: true}}, wantErr: ErrNotFound},
		{name: "dns timeout", r: fakeLookuper{err: &net.DNSError{Err: "i/o timeout", IsTimeout: true}}, wantErr: ErrTimeout},
		{name: "deadline", r: fakeLookuper{block: true}, wantErr: ErrTimeout},
		{name: "other failure", r: fakeLookuper{err: boom}, wantErr: boom},
	}
	a := netip.MustParseAddr("192.0.2.1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(context.Background(), tt.r, 10*time.Millisecond, a)
			if got != tt.want {
				t.Errorf("name = %q, want %q", got, tt.want)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "192.0.2.1") {
				t.Errorf("error %q does not name the address", err)
			}
			if tt.wantErr == boom && (errors.Is(err, ErrTimeout) || errors.Is(err, ErrNotFound)) {
				t.Errorf("failure %v misclassified", err)
			}
		})
	}
}
