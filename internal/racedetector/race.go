//go:build race

package racedetector

// Enabled is true in a build with the race detector.
const Enabled = true
