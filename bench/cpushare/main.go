// Command cpushare reads a CPU profile of the bench program and shows
// where the time went, by the part of the engine that spent it: each
// sample goes to the innermost frame that belongs to a part (a
// garbage-collector worker's samples to the collector), so the shares
// add up to the whole.
//
//	go run ./bench -scenario chain -duration 10s -cpuprofile chain.prof
//	go run ./bench/cpushare -per 70000 chain.prof   # 70,000 orchestrations completed
//
// With -per N it also prints the microseconds per unit of work.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/pprof/profile"
)

// parts maps function-name prefixes to the part of the engine they belong
// to, tried in order (the first that matches a frame wins).
var parts = []struct{ name, prefix string }{
	{"index", "github.com/durableactor/durable/index."},
	{"recovery", "github.com/durableactor/durable/recovery."},
	{"executor", "github.com/durableactor/durable/orchestration."},
	{"history codec", "github.com/durableactor/durable/internal/history."},
	{"store", "github.com/durableactor/durable/eventstore/"},
	{"store", "github.com/cockroachdb/pebble"},
	{"bus", "github.com/durableactor/durable/delivery."},
	{"bus", "github.com/ThreeDotsLabs/watermill"},
	{"bus", "github.com/nats-io/"},
	{"grains", "github.com/durableactor/durable/actors."},
	{"cluster placement", "github.com/durableactor/durable/cluster."},
	{"actor messaging", "github.com/asynkron/protoactor-go"},
	{"protobuf", "google.golang.org/protobuf"},
	{"client", "github.com/durableactor/durable."},
	{"bench load", "main."},
}

func main() {
	per := flag.Float64("per", 0, "divide the CPU time by this many units of work (say, orchestrations completed)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: cpushare [-per N] CPU.prof")
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *per); err != nil {
		fmt.Fprintln(os.Stderr, "cpushare:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, path string, per float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return err
	}
	value := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	if value < 0 {
		return fmt.Errorf("%s is not a CPU profile", path)
	}
	shares := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[value]
		total += v
		shares[partOf(s)] += v
	}
	names := make([]string, 0, len(shares))
	for n := range shares {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return int(shares[b] - shares[a]) })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	header := "part\tCPU\tshare\t"
	if per > 0 {
		header += "µs per unit\t"
	}
	fmt.Fprintln(tw, header)
	for _, n := range append(names, "total") {
		v := shares[n]
		if n == "total" {
			v = total
		}
		d := time.Duration(v) // CPU profiles count nanoseconds
		line := fmt.Sprintf("%s\t%.2fs\t%.1f%%\t", n, d.Seconds(), 100*float64(v)/float64(total))
		if per > 0 {
			line += fmt.Sprintf("%.1f\t", float64(d.Microseconds())/per)
		}
		fmt.Fprintln(tw, line)
	}
	fmt.Fprintf(tw, "profile of %s\t\t\t\n", time.Duration(p.DurationNanos).Round(time.Millisecond))
	return tw.Flush()
}

// partOf names the part a sample belongs to: the collector for its
// workers, else the part of the innermost frame that has one, else the Go
// runtime (scheduler, network poller, allocator outside any part).
func partOf(s *profile.Sample) string {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function != nil && strings.HasPrefix(line.Function.Name, "runtime.gcBgMarkWorker") {
				return "garbage collector"
			}
		}
	}
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			for _, p := range parts {
				if strings.HasPrefix(line.Function.Name, p.prefix) {
					return p.name
				}
			}
		}
	}
	return "go runtime and net"
}
