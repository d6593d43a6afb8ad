//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package main

import (
	"runtime"
	"syscall"
)

// maxRSSMiB returns the process's peak resident set size as getrusage
// reports it: the peak over the process's whole life.
func maxRSSMiB() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil || ru.Maxrss <= 0 {
		return 0, false
	}
	if runtime.GOOS == "darwin" {
		return float64(ru.Maxrss) / (1 << 20), true // bytes
	}
	return float64(ru.Maxrss) / 1024, true // KiB
}
