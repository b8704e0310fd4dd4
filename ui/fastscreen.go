package ui

import (
	"fmt"

	"github.com/gdamore/tcell/v2"
)

// asciiScreen is a tcell.Screen whose SetContent does not allocate for a
// plain ASCII character. tview fills every box's background and prints
// every character through SetContent, which tcell turns into a string per
// cell: tens of thousands of small allocations per draw of a big terminal,
// a garbage collection every few draws at flowtop's low GOGC. The strings
// of the 128 ASCII characters are made once here.
type asciiScreen struct {
	tcell.Screen
	// ready: Init already ran (tview's SetScreen calls Init again and
	// drops its error, so the terminal is opened before).
	ready bool
}

var asciiStrings = func() (s [128]string) {
	for i := range s {
		s[i] = string(rune(i))
	}
	return s
}()

func (s *asciiScreen) SetContent(x, y int, primary rune, combining []rune, style tcell.Style) {
	if len(combining) == 0 && primary >= 0 && primary < 128 {
		s.Screen.Put(x, y, asciiStrings[primary], style)
		return
	}
	s.Screen.SetContent(x, y, primary, combining, style)
}

func (s *asciiScreen) Init() error {
	if s.ready {
		return nil
	}
	s.ready = true
	return s.Screen.Init()
}

// openTerminal opens the terminal as tview would, mouse on.
func openTerminal() (*asciiScreen, error) {
	s, err := tcell.NewScreen()
	if err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	if err := s.Init(); err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	s.EnableMouse()
	return &asciiScreen{Screen: s, ready: true}, nil
}
