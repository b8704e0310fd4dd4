package conntrack

// idIndex maps kernel flow IDs to positions in the table's entries: open
// addressing with linear probing over one flat array, kept at most four
// fifths full: a lookup then probes 3 slots on average and a miss 13,
// eight bytes each, one or two cache lines (the table seldom asks: a
// refresh finds most flows where the last one left off). Three quarters
// full, the rule before, put 100k flows in 2 MB of slots instead of 1.
// It replaced a map[uint32]int32, whose lookups were a fifth of the
// table's cost in a 100k-flow dump: here a lookup is one multiply and, as
// a rule, one cache line.
type idIndex struct {
	slots []idSlot // a power of two long
	shift uint8    // 32 - log2(len(slots))
	n     int
}

// idSlot is one slot; at is the position plus one, 0 for an empty slot
// (so that a fresh array is all empty).
type idSlot struct {
	id uint32
	at int32
}

const minIndexSlots = 64

// reset empties the index and sizes it for n IDs.
func (x *idIndex) reset(n int) {
	size, bits := minIndexSlots, uint8(6)
	for 4*size < 5*n {
		size, bits = size*2, bits+1
	}
	x.slots = make([]idSlot, size)
	prefaultHuge(x.slots)
	x.shift = 32 - bits
	x.n = 0
}

// home is the slot an ID belongs in (Fibonacci hashing: the kernel's IDs
// are hashes already, but fake kernels count up).
func (x *idIndex) home(id uint32) uint32 { return (id * 0x9E3779B1) >> x.shift }

func (x *idIndex) mask() uint32 { return uint32(len(x.slots) - 1) }

// get returns the position stored for id.
func (x *idIndex) get(id uint32) (int32, bool) {
	if x.slots == nil {
		return 0, false
	}
	for i := x.home(id); ; i = (i + 1) & x.mask() {
		s := x.slots[i]
		if s.at == 0 {
			return 0, false
		}
		if s.id == id {
			return s.at - 1, true
		}
	}
}

// set stores pos for id, replacing what id had.
func (x *idIndex) set(id uint32, pos int32) {
	if 5*(x.n+1) > 4*len(x.slots) {
		x.grow()
	}
	for i := x.home(id); ; i = (i + 1) & x.mask() {
		s := &x.slots[i]
		if s.at == 0 {
			*s = idSlot{id: id, at: pos + 1}
			x.n++
			return
		}
		if s.id == id {
			s.at = pos + 1
			return
		}
	}
}

// remove deletes id. The slots after it that belong at or before its
// place move back (backward-shift deletion), so lookups need no
// tombstones.
func (x *idIndex) remove(id uint32) {
	if x.slots == nil {
		return
	}
	m := x.mask()
	i := x.home(id)
	for ; x.slots[i].id != id || x.slots[i].at == 0; i = (i + 1) & m {
		if x.slots[i].at == 0 {
			return
		}
	}
	x.n--
	for j := i; ; {
		j = (j + 1) & m
		if x.slots[j].at == 0 {
			x.slots[i] = idSlot{}
			return
		}
		// The slot at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		k := x.home(x.slots[j].id)
		if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
			continue
		}
		x.slots[i] = x.slots[j]
		i = j
	}
}

// grow doubles the slots and places every ID again.
func (x *idIndex) grow() {
	old := x.slots
	x.reset(max(x.n*2, minIndexSlots/2))
	for _, s := range old {
		if s.at != 0 {
			x.set(s.id, s.at-1)
		}
	}
}

// len is the number of IDs held.
func (x *idIndex) len() int { return x.n }
