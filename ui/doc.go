// Package ui is flowtop's interactive screen: a full-screen tview
// application showing the flows of the newest conntrack.Snapshot, with
// tabs per process, per local host and per remote address.
//
// The screen never talks to the kernel. It reads immutable snapshots from a
// Source on its own tick, builds the sorted and filtered row set off the UI
// goroutine, and swaps it in with one redraw per tick. The table is
// virtual: a draw formats and writes only the visible rows (flowTable
// draws them itself, not through tview.Table), so drawing costs the same
// for a thousand flows or a million.
package ui
