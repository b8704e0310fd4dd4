package ui

import (
	"slices"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"
)

// helpNames are the names the help gives keys other than characters.
var helpNames = map[tcell.Key]string{
	tcell.KeyUp: "↑", tcell.KeyDown: "↓", tcell.KeyLeft: "←", tcell.KeyRight: "→",
	tcell.KeyPgUp: "PgUp", tcell.KeyPgDn: "PgDn", tcell.KeyHome: "Home", tcell.KeyEnd: "End",
	tcell.KeyTab: "TAB", tcell.KeyBacktab: "Shift-TAB", tcell.KeyEnter: "Enter",
	tcell.KeyEscape: "Esc", tcell.KeyDelete: "Delete", tcell.KeyCtrlC: "Ctrl-C",
}

// keyNames names the keys of an act as the help does (hidden aliases
// left out).
func keyNames(t *testing.T, c act) []string {
	var names []string
	for _, r := range c.runes {
		if r == ' ' {
			names = append(names, "space")
		} else {
			names = append(names, string(r))
		}
	}
	for _, k := range c.codes {
		n, ok := helpNames[k]
		if !ok {
			t.Errorf("key %v has no name in the help", tcell.KeyNames[k])
		}
		names = append(names, n)
	}
	return names
}

// TestHelpMatchesTableKeys: every key of the table is named in its
// binding's line of the help (its keys, or its text: "Esc clears it"),
// every key the help names is bound, and every line of the help is a
// binding's (or continues one), in the keymap's order.
func TestHelpMatchesTableKeys(t *testing.T) {
	for _, b := range tableKeys {
		if b.keys == "" || b.help == "" || len(b.acts) == 0 {
			t.Errorf("binding %q: keys, help and acts are all needed", b.keys)
			continue
		}
		listed := strings.Fields(b.keys)
		var bound []string
		for _, c := range b.acts {
			if c.do == nil {
				t.Errorf("binding %q: a table key must do something", b.keys)
			}
			for _, n := range keyNames(t, c) {
				bound = append(bound, n)
				if !slices.Contains(listed, n) && !strings.Contains(b.help, n) {
					t.Errorf("binding %q: key %q is not in the help", b.keys, n)
				}
			}
		}
		for _, n := range listed {
			if !slices.Contains(bound, n) {
				t.Errorf("the help names %q in %q, which no act binds", n, b.keys)
			}
		}
	}

	// The help's lines, tags removed: each begins with the keys of the
	// next binding (two where a binding has another beside it), or
	// continues the last one's text.
	entries := append(tableKeys[:len(tableKeys):len(tableKeys)], mouseHelp)
	next := 0
	for _, l := range strings.Split(helpScreen, "\n") {
		l = strings.NewReplacer("[::b]", "", "[::-]", "").Replace(l)
		if strings.HasPrefix(l, strings.Repeat(" ", helpKeysWidth)) && next > 0 {
			if !strings.Contains(entries[next-1].help, strings.TrimSpace(l)) {
				t.Errorf("help line %q continues no binding's text", l)
			}
			continue
		}
		if next == len(entries) || !strings.HasPrefix(l, entries[next].keys+" ") {
			t.Fatalf("help line %q is not the line of binding %d", l, next)
		}
		first, _, _ := strings.Cut(entries[next].help, "\n")
		if !strings.Contains(l, first) {
			t.Errorf("help line %q lacks the text %q", l, first)
		}
		if entries[next].beside != nil {
			next++
			if !strings.Contains(l, entries[next].keys) || !strings.Contains(l, entries[next].help) {
				t.Errorf("help line %q lacks the binding %q beside", l, entries[next].keys)
			}
		}
		next++
	}
	if next != len(entries) {
		t.Errorf("the help shows %d of %d bindings", next, len(entries))
	}
}

// TestKeymapsBindEachKeyOnce: in every mode a key has one meaning.
func TestKeymapsBindEachKeyOnce(t *testing.T) {
	for m, mk := range modeKeys {
		seen := map[string]bool{}
		for _, b := range mk.keys {
			for _, c := range b.acts {
				keys := []string{}
				for _, r := range c.runes {
					keys = append(keys, "rune "+string(r))
				}
				for _, k := range slices.Concat(c.codes, c.hidden) {
					keys = append(keys, tcell.KeyNames[k])
				}
				if len(keys) == 0 {
					t.Errorf("mode %d: an act without keys", m)
				}
				for _, k := range keys {
					if seen[k] {
						t.Errorf("mode %d: %s is bound twice", m, k)
					}
					seen[k] = true
				}
			}
		}
	}
}
