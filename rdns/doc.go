// Package rdns resolves addresses to names in the background and caches the
// answers, so that the screen and the exporters can ask for the name of every
// visible flow on every tick without ever waiting for DNS.
//
// [Cache.Name] only reads the cache: when the answer is not there it queues
// a lookup and returns "" at once, and the name shows up on a later call.
// A fixed pool of workers does the lookups, each bounded by a timeout, one
// per address however many callers ask. Answers are kept for a TTL, failures
// and missing names for a shorter one, and the cache is bounded, evicting the
// least recently used address. When the queue is full a request is dropped
// and counted rather than blocking the caller; the next call asks again.
//
// [Cache.Changed] tells a UI that new names have arrived so it can redraw on
// its own tick.
package rdns
