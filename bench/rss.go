package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// peakMeter measures the peak resident set size of one scenario. The
// kernel keeps one peak per process that only grows, so a scenario's own
// peak needs either a reset before it (Linux: /proc/self/clear_refs) or a
// peak that grew during it (getrusage elsewhere); otherwise it is unknown.
type peakMeter struct {
	reset  bool    // the kernel's peak was reset before the scenario
	before float64 // else getrusage's peak before the scenario, in MiB
}

// startPeak returns the memory an earlier scenario left behind to the
// system and resets the peak where the platform allows it.
func startPeak() peakMeter {
	runtime.GC()
	debug.FreeOSMemory()
	if resetPeakRSS() {
		return peakMeter{reset: true}
	}
	before, _ := maxRSSMiB()
	return peakMeter{before: before}
}

// peakMiB returns the peak resident set size since startPeak, and false
// where the platform cannot tell it.
func (m peakMeter) peakMiB() (float64, bool) {
	if m.reset {
		return procStatusMiB("VmHWM:")
	}
	after, ok := maxRSSMiB()
	if !ok || after <= m.before {
		// The peak was reached before this scenario, if it is known at all.
		return 0, false
	}
	return after, true
}

// resetPeakRSS sets the process's peak resident set size (VmHWM) to its
// current one; writing 5 to clear_refs does only that.
func resetPeakRSS() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.Write([]byte("5"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil
}

// rssMiB reads the process's current resident set size, and false where
// /proc is not available.
func rssMiB() (float64, bool) { return procStatusMiB("VmRSS:") }

func procStatusMiB(field string) (float64, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb); err != nil || kb <= 0 {
				return 0, false
			}
			return kb / 1024, true
		}
	}
	return 0, false
}
