package geo

import (
	"errors"
	"strings"
)

// ErrNoDatabase is wrapped by the hint Open returns when no database file
// was found at all. Callers that run with GeoIP switched off can drop it with
// errors.Is.
var ErrNoDatabase = errors.New("geoip: no database")

// invalidDBError marks a file that is not a usable MaxMind DB. It keeps the
// library's error for errors.As but words the message for people.
type invalidDBError struct{ err error }

func (e invalidDBError) Error() string {
	// The library says "error opening database: invalid MaxMind DB file";
	// the prefix adds nothing after our own "invalid MaxMind DB:".
	msg := strings.TrimPrefix(e.err.Error(), "error opening database: ")
	if msg == "invalid MaxMind DB file" { // no metadata marker found
		msg = "no metadata section (not a .mmdb file, or truncated)"
	}
	return "invalid MaxMind DB: " + msg
}

func (e invalidDBError) Unwrap() error { return e.err }

// redactedError hides a secret (the licence key) in the message of err and of
// everything it wraps, while keeping the chain for errors.Is and errors.As.
type redactedError struct {
	err     error
	secrets []string
}

func (e redactedError) Error() string { return redact(e.err.Error(), e.secrets) }

func (e redactedError) Unwrap() error { return e.err }

// redact replaces every non-empty secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}
