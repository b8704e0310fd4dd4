package metrics

import (
	"math"
	"strconv"
)

// ContentType is the Prometheus text exposition format served on /metrics.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric types of the text format.
const (
	typeCounter = "counter"
	typeGauge   = "gauge"
)

// label is one label pair of a sample.
type label struct{ name, value string }

// expWriter appends the text exposition format to a byte slice: a family
// header (HELP and TYPE) then its samples. Names and label names are
// constants of this package and are not checked; label values and help
// texts are escaped.
type expWriter struct {
	b []byte
}

// header starts a metric family.
func (w *expWriter) header(name, typ, help string) {
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = appendEscaped(w.b, help, false)
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, typ...)
	w.b = append(w.b, '\n')
}

// labels writes the sample name and its labels, if any.
func (w *expWriter) labels(name string, labels []label) {
	w.b = append(w.b, name...)
	if len(labels) == 0 {
		return
	}
	w.b = append(w.b, '{')
	for i, l := range labels {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = append(w.b, l.name...)
		w.b = append(w.b, `="`...)
		w.b = appendEscaped(w.b, l.value, true)
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, '}')
}

// uint writes a sample with an integer value.
func (w *expWriter) uint(name string, v uint64, labels ...label) {
	w.labels(name, labels)
	w.b = append(w.b, ' ')
	w.b = strconv.AppendUint(w.b, v, 10)
	w.b = append(w.b, '\n')
}

// float writes a sample with a float value.
func (w *expWriter) float(name string, v float64, labels ...label) {
	w.labels(name, labels)
	w.b = append(w.b, ' ')
	w.b = appendFloat(w.b, v)
	w.b = append(w.b, '\n')
}

// appendFloat formats v as the text format wants it: the shortest exact
// decimal, +Inf, -Inf or NaN.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped escapes a label value (backslash, double quote, line
// feed) or a help text (backslash, line feed).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// boolValue is 1 for true, 0 for false.
func boolValue(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}
