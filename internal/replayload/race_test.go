//go:build race

package replayload

// raceEnabled skips the allocation budgets: the race detector allocates.
const raceEnabled = true
