package geo

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles its expression on first use. A package-level
// regexp.MustCompile runs at init and so links the regexp engine (some
// 140 kB of a mips binary) into every program importing geo, even the
// router build, which never uses the code that matches.
type lazyRegexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

func (l *lazyRegexp) get() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.expr) })
	return l.re
}
