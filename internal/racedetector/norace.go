//go:build !race

// Package racedetector tells tests whether the race detector is on: its
// instrumentation allocates and keeps shadow memory, so tests that count
// allocations or watch the process's memory cannot judge under it.
package racedetector

// Enabled is true in a build with the race detector.
const Enabled = false
