//go:build headless

package main

// haveScreen is false in this build: the router daemon (-tags headless)
// leaves out the screen and its terminal libraries (tview, tcell), a fifth
// of the binary. run refuses the screen mode before opening anything.
const haveScreen = false
