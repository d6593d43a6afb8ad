//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package main

// maxRSSMiB is unknown on this platform.
func maxRSSMiB() (float64, bool) { return 0, false }
