package nstest

import "strings"

// ConntrackTuples reads the key=value pairs of one line of conntrack(8)
// output in its extended format (`conntrack -L -o extended`, or an event
// of `conntrack -E -o extended`): the first src= opens the original tuple,
// the second the reply tuple; of a key repeated within a tuple the first
// value counts. words are the fields before the first key=value pair
// (family, protocol, timeout, state, [DESTROY], ...). ok is false when the
// line does not hold two tuples.
func ConntrackTuples(line string) (words []string, orig, reply map[string]string, ok bool) {
	var tuples []map[string]string
	for _, f := range strings.Fields(line) {
		k, v, isPair := strings.Cut(f, "=")
		if !isPair {
			if len(tuples) == 0 {
				words = append(words, f)
			}
			continue
		}
		if k == "src" {
			tuples = append(tuples, map[string]string{})
		}
		if n := len(tuples); n > 0 {
			if _, seen := tuples[n-1][k]; !seen {
				tuples[n-1][k] = v
			}
		}
	}
	if len(tuples) != 2 {
		return words, nil, nil, false
	}
	return words, tuples[0], tuples[1], true
}
