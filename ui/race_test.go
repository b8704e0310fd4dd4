//go:build race

package ui

// raceOn reports whether the tests run with the race detector, which
// makes a build of 50k flows some ten times slower.
const raceOn = true
