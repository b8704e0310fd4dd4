package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/flowtop/flowtop/enrich"
)

// Encode writes the document as one line of JSON, the same bytes as
// json.NewEncoder(w).Encode(p.Full()), one flow at a time: what it holds
// at once is one flow's JSON and a write buffer. A flow encoding/json
// would refuse (a NaN or infinite rate, which the table never computes)
// ends it with an error after what was already written, not before.
func (p *Prepared) Encode(w io.Writer) error {
	head, err := p.AppendHead(nil)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head)
	var one []byte
	for i := range p.order {
		if i > 0 {
			bw.WriteByte(',')
		}
		if one, err = p.AppendFlow(one[:0], i); err != nil {
			return err
		}
		if _, err := bw.Write(one); err != nil {
			return err // the reader is gone: no use formatting the rest
		}
	}
	bw.WriteString(Tail + "\n")
	return bw.Flush() // the first write error, if any
}

// Tail is what follows the last flow of an encoded document.
const Tail = "]}"

// AppendHead appends the JSON of the document up to its first flow: the
// document is AppendHead, the flows (AppendFlow) separated by commas,
// and Tail, which is what encoding/json makes of it. The MQTT exporter
// encodes its parts this way, with Part and Parts set.
func (p *Prepared) AppendHead(b []byte) ([]byte, error) {
	head := p.Document
	head.Flows = []Flow{}
	j, err := json.Marshal(&head)
	if err != nil {
		return b, fmt.Errorf("encode document: %w", err)
	}
	// The flows go between the "[" and the "]}" of the empty list, the
	// last key of the document.
	if !bytes.HasSuffix(j, []byte(`"flows":[`+Tail)) {
		return b, fmt.Errorf("encode document: flows are not its last key")
	}
	return append(b, j[:len(j)-len(Tail)]...), nil
}

// Len is the number of flows the document lists.
func (p *Prepared) Len() int { return len(p.order) }

// AppendFlow appends the JSON of the i-th listed flow.
func (p *Prepared) AppendFlow(b []byte, i int) ([]byte, error) {
	var n *enrich.Names
	if p.names != nil {
		names := p.names.Names(p.order[i])
		n = &names
	}
	return p.appendFlow(b, i, n)
}

// AppendFlowUnnamed is AppendFlow without the flow's names (services,
// reverse DNS, GeoIP, process): never longer than AppendFlow, whatever
// the names.
func (p *Prepared) AppendFlowUnnamed(b []byte, i int) ([]byte, error) {
	return p.appendFlow(b, i, nil)
}

func (p *Prepared) appendFlow(b []byte, i int, n *enrich.Names) ([]byte, error) {
	f := p.order[i]
	b, ok := appendFlow(b, f, p.now, n)
	if !ok {
		fd := p.flow(i)
		_, err := json.Marshal(&fd)
		return b, fmt.Errorf("encode flow %d: %w", f.ID, err)
	}
	return b, nil
}

// WriteFile writes the document to path atomically: readers (a router's
// web server, say) see the old file or the new one, never half of one.
func WriteFile(path string, d *Prepared) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := d.Encode(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return nil
}
