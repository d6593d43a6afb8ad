//go:build !race

package replayload

const raceEnabled = false
