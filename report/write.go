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

// Encoder is a document that can write itself as one line of JSON:
// *Document and *Prepared.
type Encoder interface {
	Encode(w io.Writer) error
}

// Encode writes d as one line of JSON, as json.Encoder does.
func (d *Document) Encode(w io.Writer) error {
	return json.NewEncoder(w).Encode(d)
}

// Encode writes the document as one line of JSON, the same bytes as
// json.NewEncoder(w).Encode(p.Full()), one flow at a time: what it holds
// at once is one flow's document and a write buffer.
func (p *Prepared) Encode(w io.Writer) error {
	head := p.Document
	head.Flows = []Flow{}
	b, err := json.Marshal(&head)
	if err != nil {
		return fmt.Errorf("encode document: %w", err)
	}
	// The flows go between the "[" and the "]}" of the empty list, the
	// last key of the document.
	const tail = "]}"
	if !bytes.HasSuffix(b, []byte(`"flows":[`+tail)) {
		return fmt.Errorf("encode document: flows are not its last key")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(b[:len(b)-len(tail)])
	var (
		one    []byte
		status = make([]string, 0, 16) // AppendNames's room
		names  enrich.Names
	)
	for i, f := range p.order {
		if i > 0 {
			bw.WriteByte(',')
		}
		var n *enrich.Names
		if p.names != nil {
			names = p.names.Names(f)
			n = &names
		}
		var ok bool
		if one, ok = appendFlow(one[:0], f, p.now, n, status); !ok {
			fd := p.flow(i)
			_, err := json.Marshal(&fd)
			return fmt.Errorf("encode flow %d: %w", f.ID, err)
		}
		if _, err := bw.Write(one); err != nil {
			return err // the reader is gone: no use formatting the rest
		}
	}
	bw.WriteString(tail + "\n")
	return bw.Flush() // the first write error, if any
}

// WriteFile writes the document to path atomically: readers (a router's
// web server, say) see the old file or the new one, never half of one.
func WriteFile(path string, d Encoder) error {
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
