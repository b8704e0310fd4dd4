package remote

import (
	"fmt"
)

// ViewFromDocument is the view of one snapshot document (JSON, already
// inflated, as a node publishes it on <prefix>/<node>/snapshot), as a
// Client would show it, for tests and tools that have recorded documents
// and no broker. One part of a split document gives the incomplete view
// of that part alone (PartsReceived 1 of Parts). Received is the
// document's time.
func ViewFromDocument(node string, doc []byte) (*View, error) {
	if err := checkNodeName(node); err != nil {
		return nil, fmt.Errorf("node %q: %w", oneLine(node, 40), err)
	}
	p, err := decodeDocument(doc, DefaultMaxFlows)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	complete := p.Parts <= 1
	return newView(node, &p.header, p.flows, p.names, complete, 1, false, p.Time, p.skipped), nil
}
