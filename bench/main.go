// Command bench reproduces durable's performance figures. Without
// -scenario it runs the headline set and prints one table; with -json it
// prints one JSON object per result and nothing else on stdout. Every
// scenario checks its own answer and the program exits non-zero when one is
// wrong, so a fast wrong answer is a failure.
//
//	go run ./bench [-scenario a,b,...] [-backend memory|pebble] [-duration 10s] [-json] [scenario flags]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// config holds the flags every scenario may read.
type config struct {
	backend  string
	duration time.Duration
	dir      string
	log      *slog.Logger
	stderr   io.Writer // for notes on the run, such as a clamped flag

	writers         int
	eventsPerAppend int
	events          int
	inflight        int
	width           int
	instances       int
	entities        int
	clients         int
	soak            time.Duration
}

// result is one line of output.
type result struct {
	Scenario string             `json:"scenario"`
	Params   map[string]any     `json:"params"`
	Metrics  map[string]float64 `json:"metrics"`
}

type scenario struct {
	name  string
	about string
	// long scenarios (minutes) run only when named, not in the headline set.
	long bool
	// run returns the results of the scenario with the given config; the
	// headline set may run it several times with different params.
	run func(ctx context.Context, cfg config) ([]result, error)
}

// scenarios in the order of the table.
var scenarios = []scenario{
	{"store-append", "durable appends, params writers and events_per_append", false, runStoreAppend},
	{"store-read", "reading one long stream", false, runStoreRead},
	{"store-catchup", "catching up a subscription on the global log", false, runStoreCatchUp},
	{"replay", "rebuilding an orchestration from its stored history, params events", false, runReplay},
	{"episode", "one incremental step of a live orchestration", false, runEpisode},
	{"chain", "three-activity chains end to end on the embedded defaults, many in flight", false, runChain},
	{"fanout", "fan-out/fan-in end to end, params width", false, runFanOut},
	{"soak", "chain for a long time (-soak, default 120s): resident memory must stay flat", true, runSoak},
	{"parked", "memory of many instances waiting on timers and events, passivated", false, runParked},
	{"entity-signal", "durable signals from many clients across many entities, params entities, clients", false, runEntitySignal},
	{"entity-hot", "operations on one entity from many clients, batched", false, runEntityHot},
	{"entity-call", "entity calls from orchestrations, one call each, many in flight", false, runEntityCall},
	{"entity-parked", "memory of many passivated entities, param instances", false, runEntityParked},
	{"open", "Open+Start of an engine on an empty directory, and Stop", false, runOpen},
	{"reopen", "Open+Start of a data directory holding many instances, param instances (default 1000000)", true, runReopen},
	{"list", "a page of 100 from many indexed instances, filtered, from random points", true, runList},
	{"purge", "purging the completed instances of a data directory's first tenth", true, runPurge},
	{"http-start", "starts through the HTTP API against Client.Start, alternating, param clients", false, runHTTPStart},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		names   = fs.String("scenario", "", "comma-separated scenarios to run (default: the headline set, all but soak, reopen, list and purge); one of "+scenarioNames())
		jsonOut = fs.Bool("json", false, "print one JSON object per result on stdout")
		cfg     config
	)
	fs.StringVar(&cfg.backend, "backend", "pebble", "event store: memory or pebble")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each measurement runs, at least one round")
	fs.StringVar(&cfg.dir, "dir", "", "where scenarios keep their data, each in a new subdirectory removed afterwards (default: the system's temporary directory)")
	fs.IntVar(&cfg.writers, "writers", 0, "store-append: concurrent writers (default: the headline set 1, 64)")
	fs.IntVar(&cfg.eventsPerAppend, "events-per-append", 0, "store-append: events per append (default 1)")
	fs.IntVar(&cfg.events, "events", 0, "store-read, store-catchup: stream length (default 100000); replay: history length (default 10000, at most an orchestration's history limit)")
	fs.IntVar(&cfg.inflight, "inflight", 0, "chain, fanout, entity-call: orchestrations in flight (default 100, 20 and 20)")
	fs.IntVar(&cfg.width, "width", 0, "fanout: activities per orchestration (default 100)")
	fs.IntVar(&cfg.instances, "instances", 0, "parked, entity-parked: instances or entities to start (default 100000); reopen, list, purge: instances in the data directory (default 1000000)")
	fs.IntVar(&cfg.entities, "entities", 0, "entity-signal: entities signalled (default 1000)")
	fs.IntVar(&cfg.clients, "clients", 0, "entity-signal, entity-hot: concurrent clients (default 100); http-start (default 64)")
	fs.DurationVar(&cfg.soak, "soak", 120*time.Second, "soak: how long it runs")
	sweepFlag := fs.String("sweep", "", "run the scenarios once per value of a parameter: param=v1,v2,... (inflight, width, events, clients, instances, entities, writers)")
	plotFile := fs.String("plot", "", "with -sweep: draw the curves into this .svg or .png file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	cfg.stderr = stderr
	cfg.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cfg.backend != "memory" && cfg.backend != "pebble" {
		fmt.Fprintf(stderr, "bench: unknown backend %q (memory or pebble)\n", cfg.backend)
		return 2
	}
	var selected []scenario
	for _, s := range scenarios {
		if !s.long {
			selected = append(selected, s)
		}
	}
	if *names != "" {
		selected = nil
		for _, n := range strings.Split(*names, ",") {
			i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == strings.TrimSpace(n) })
			if i < 0 {
				fmt.Fprintf(stderr, "bench: unknown scenario %q; known: %s\n", n, scenarioNames())
				return 2
			}
			selected = append(selected, scenarios[i])
		}
	}
	var sw sweep
	if *sweepFlag != "" {
		var err error
		if sw, err = parseSweep(*sweepFlag); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
	} else if *plotFile != "" {
		fmt.Fprintln(stderr, "bench: -plot needs -sweep")
		return 2
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			f, err := os.Create(*memProfile)
			if err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	ctx := context.Background()
	defer removeDatasets()
	var all []result
	failed := false
	points := []int{0} // no sweep: one run at the configured values
	if sw.param != "" {
		points = sw.values
	}
	for _, s := range selected {
		for _, v := range points {
			cfg := cfg
			if sw.param != "" {
				cfg = sw.set(cfg, v)
				fmt.Fprintf(stderr, "bench: running %s at %s=%d\n", s.name, sw.param, v)
			} else {
				fmt.Fprintf(stderr, "bench: running %s (%s)\n", s.name, s.about)
			}
			peak := startPeak()
			results, err := s.run(ctx, cfg)
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s: %v\n", s.name, err)
				failed = true
				continue
			}
			peakMiB, peakKnown := peak.peakMiB()
			for _, r := range results {
				if peakKnown {
					r.Metrics["peak_rss_mib"] = peakMiB
				}
				if *jsonOut {
					json.NewEncoder(stdout).Encode(r)
				}
			}
			all = append(all, results...)
		}
	}
	if !*jsonOut {
		printTable(stdout, all)
	}
	if *plotFile != "" && !failed {
		if err := plotSweep(*plotFile, sw, all); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "bench: plotted %s\n", *plotFile)
	}
	if failed {
		return 1
	}
	return 0
}

func scenarioNames() string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// printTable prints results as one aligned table: a row per result, its
// params, then its metrics.
func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tparams\tmetrics")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Scenario, formatParams(r.Params), formatMetrics(r.Metrics))
	}
	tw.Flush()
}

func formatParams(p map[string]any) string {
	keys := slices.Sorted(maps.Keys(p))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, p[k])
	}
	return strings.Join(parts, " ")
}

func formatMetrics(m map[string]float64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := m[k]
		switch {
		case v >= 1000:
			parts[i] = fmt.Sprintf("%s=%.0f", k, v)
		default:
			parts[i] = fmt.Sprintf("%s=%.3g", k, v)
		}
	}
	return strings.Join(parts, " ")
}

// scenarioDir makes a new directory for one store or engine of a scenario,
// under -dir or the system's temporary directory, so that no run or
// scenario finds another's data; remove deletes it.
func scenarioDir(cfg config, name string) (dir string, remove func(), err error) {
	pattern := name + "-*"
	if cfg.dir == "" {
		pattern = "durable-bench-" + pattern
	}
	if dir, err = os.MkdirTemp(cfg.dir, pattern); err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
