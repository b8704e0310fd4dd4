package main

// streamsOnce reports whether the options ask for one document of a single
// dump with a limit (flowtop --once -t 0 --limit N): that needs no table,
// the dump goes straight into the document.
func (o *options) streamsOnce() bool {
	return o.singleDump() && o.limit > 0 && o.mqtt.url == "" && o.write == ""
}

// singleDump reports whether flowtop reads the table once and exits
// (--once -t 0): nothing is waited for after the dump.
func (o *options) singleDump() bool { return o.once && o.intervalDuration() == 0 }
