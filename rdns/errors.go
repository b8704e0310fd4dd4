package rdns

import "errors"

var (
	// ErrNotFound means the address has no name: NXDOMAIN or no PTR record.
	// It is a normal answer, cached for Config.NegativeTTL.
	ErrNotFound = errors.New("no name")

	// ErrTimeout means the lookup did not finish within Config.Timeout.
	ErrTimeout = errors.New("timed out")
)
