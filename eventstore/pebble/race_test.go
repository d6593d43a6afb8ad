//go:build race

package pebble

// raceEnabled is true in a build with the race detector, whose
// instrumentation makes allocation counts meaningless.
const raceEnabled = true
