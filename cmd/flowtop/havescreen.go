//go:build !headless

package main

// haveScreen is false in the lean router build (-tags headless), which
// leaves out the screen and its terminal libraries.
const haveScreen = true
