package ui

import (
	"strings"

	"github.com/gdamore/tcell/v2"
)

// keymap is what the keys do in one mode: a list of bindings, each the
// keys as the help names them, what they do in words, and per key an
// action. The help screen is made from the table's keymap (helpText), so
// that a key cannot be bound without its line in the help, nor described
// there without a binding.
type keymap []binding

// binding is one entry of a keymap, one line of the help (or half of one:
// see beside).
type binding struct {
	keys string // as the help shows them: "x  Delete"
	// help says what the keys do; a text of several lines continues
	// below the first, indented.
	help string
	// beside, when set, puts the next binding on the same line of the
	// help, in the columns it gives.
	beside *helpColumns
	acts   []act
}

// act is what some keys of a binding do.
type act struct {
	runes string      // the characters that trigger it
	codes []tcell.Key // and the other keys
	// hidden keys trigger it too without being named in the help:
	// aliases, such as less's Ctrl-B and Ctrl-F for PgUp and PgDn.
	hidden []tcell.Key
	// do is the action; when nil, the focused widget gets the key send
	// instead (j and k scroll a text as ↓ and ↑ do).
	do   func(a *App)
	send tcell.Key
}

// on is an act: runes and codes do do.
func on(do func(a *App), runes string, codes ...tcell.Key) act {
	return act{runes: runes, codes: codes, do: do}
}

// as is an act: runes reach the focused widget as the key send.
func as(send tcell.Key, runes string) act {
	return act{runes: runes, send: send}
}

// alias adds keys that trigger the act without being named in the help.
func (c act) alias(codes ...tcell.Key) act {
	c.hidden = append(c.hidden, codes...)
	return c
}

// triggered reports whether ev is one of the act's keys.
func (c *act) triggered(ev *tcell.EventKey) bool {
	if ev.Key() == tcell.KeyRune {
		return strings.ContainsRune(c.runes, ev.Rune())
	}
	for _, codes := range [2][]tcell.Key{c.codes, c.hidden} {
		for _, k := range codes {
			if k == ev.Key() {
				return true
			}
		}
	}
	return false
}

// find returns the act of ev, nil when no binding has it.
func (km keymap) find(ev *tcell.EventKey) *act {
	for i := range km {
		for j := range km[i].acts {
			if c := &km[i].acts[j]; c.triggered(ev) {
				return c
			}
		}
	}
	return nil
}

// unboundKeys is what becomes of a key a mode's keymap lacks.
type unboundKeys uint8

const (
	swallow         unboundKeys = iota // nothing
	pass                               // the focused widget gets it
	passAllButRunes                    // it gets all but characters
)

// handle runs ev's act and returns what the focused widget gets: nil,
// ev, or the key an act sends instead.
func (km keymap) handle(a *App, ev *tcell.EventKey, unbound unboundKeys) *tcell.EventKey {
	c := km.find(ev)
	switch {
	case c == nil && (unbound == pass || unbound == passAllButRunes && ev.Key() != tcell.KeyRune):
		return ev
	case c == nil:
		return nil
	case c.do != nil:
		c.do(a)
		return nil
	}
	return tcell.NewEventKey(c.send, 0, tcell.ModNone)
}

// helpColumns are the columns of a help line holding two bindings: the
// first's text is padded to text columns, the second's keys to keys.
type helpColumns struct{ text, keys int }

// helpKeysWidth is the column of the help's texts.
const helpKeysWidth = 15

// helpText lays the bindings out as the help screen shows them: keys in
// bold, text beside them, a text's further lines indented below it, two
// bindings on one line where the first says so.
func helpText(bindings ...binding) string {
	var b strings.Builder
	for i := 0; i < len(bindings); i++ {
		e := &bindings[i]
		first, more, _ := strings.Cut(e.help, "\n")
		b.WriteString(boldKeys(e.keys, helpKeysWidth))
		if e.beside != nil && i+1 < len(bindings) {
			i++
			next := &bindings[i]
			b.WriteString(padRight(first, e.beside.text) + boldKeys(next.keys, e.beside.keys))
			first, more, _ = strings.Cut(next.help, "\n")
		}
		b.WriteString(first)
		for _, l := range strings.Split(more, "\n") {
			if l != "" {
				b.WriteString("\n" + strings.Repeat(" ", helpKeysWidth) + l)
			}
		}
		if i+1 < len(bindings) {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// boldKeys is keys in bold, padded to width columns.
func boldKeys(keys string, width int) string {
	return "[::b]" + esc(keys) + "[::-]" + strings.Repeat(" ", max(0, width-textWidth(keys)))
}

func padRight(s string, width int) string {
	return s + strings.Repeat(" ", max(0, width-textWidth(s)))
}
