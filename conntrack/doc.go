// Package conntrack is flowtop's kernel side: it reads the netfilter
// connection tracking table over ctnetlink (a streamed dump, then the event
// stream), keeps the flow table in one owner goroutine, and hands consumers
// immutable snapshots.
//
// Nothing in this package knows about screens, names or exporters.
package conntrack
