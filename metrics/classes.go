package metrics

import (
	"cmp"
	"slices"

	"github.com/flowtop/flowtop/conntrack"
)

// flowClass is a flow's family, protocol and state number.
type flowClass struct {
	family conntrack.Family
	proto  conntrack.Proto
	state  uint8
}

// classCount is the number of flows of one class.
type classCount struct {
	family, proto, state string
	n                    int
}

// classCounter counts flows by family, protocol and state: in an array
// for the usual classes (a map access per flow cost a 100k-flow fold
// 2 ms), in a map for the rest.
type classCounter struct {
	common [2][256][statesCommon]int32
	rare   map[flowClass]int32
}

// statesCommon covers every state the kernel names (TCP, SCTP and DCCP
// have ten each).
const statesCommon = 16

// familyIndex is 0 for IPv4, 1 for IPv6, -1 for anything else.
func familyIndex(f conntrack.Family) int {
	switch f {
	case conntrack.IPv4:
		return 0
	case conntrack.IPv6:
		return 1
	}
	return -1
}

// reset sets every count to zero.
func (c *classCounter) reset() {
	clear(c.common[:])
	clear(c.rare)
}

// add counts a flow. The state of a protocol without states is always 0,
// so that one class has one set of label values.
func (c *classCounter) add(f *conntrack.Flow) {
	state := f.State
	if !hasStates(f.Proto) {
		state = 0
	}
	if fi := familyIndex(f.Family); fi >= 0 && state < statesCommon {
		c.common[fi][f.Proto][state]++
		return
	}
	if c.rare == nil {
		c.rare = map[flowClass]int32{}
	}
	c.rare[flowClass{family: f.Family, proto: f.Proto, state: state}]++
}

func hasStates(p conntrack.Proto) bool {
	return p == conntrack.ProtoTCP || p == conntrack.ProtoSCTP || p == conntrack.ProtoDCCP
}

// appendClasses appends the flow counts, sorted by family, protocol and
// state names.
func (c *classCounter) appendClasses(dst []classCount) []classCount {
	start := len(dst)
	add := func(fc flowClass, n int32) {
		f := conntrack.Flow{Family: fc.family, Proto: fc.proto, State: fc.state}
		dst = append(dst, classCount{family: fc.family.String(), proto: fc.proto.String(), state: f.StateName(), n: int(n)})
	}
	for fi, fam := range []conntrack.Family{conntrack.IPv4, conntrack.IPv6} {
		for p := range 256 {
			for st, n := range c.common[fi][p] {
				if n > 0 {
					add(flowClass{family: fam, proto: conntrack.Proto(p), state: uint8(st)}, n)
				}
			}
		}
	}
	for fc, n := range c.rare {
		add(fc, n)
	}
	slices.SortFunc(dst[start:], func(x, y classCount) int {
		return cmp.Or(cmp.Compare(x.family, y.family), cmp.Compare(x.proto, y.proto), cmp.Compare(x.state, y.state))
	})
	return dst
}
