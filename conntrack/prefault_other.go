//go:build !linux

package conntrack

// prefault and prefaultHuge are Linux's madvise hints (prefault_linux.go);
// elsewhere the pages fault in on first write as usual.
func prefault[T any](s []T)     {}
func prefaultHuge[T any](s []T) {}
