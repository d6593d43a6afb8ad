package replayload

import (
	"fmt"
	"testing"
)

// BenchmarkReplay replays a chain history of about 10,000 events from its
// encoded bytes. Run with -cpu 1 for the one-core figure.
func BenchmarkReplay(b *testing.B) {
	for _, events := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			n := StepsFor(events)
			recs, events, err := Record(n)
			if err != nil {
				b.Fatal(err)
			}
			r := NewReplayer()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := r.Replay(recs, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkEpisode is one incremental episode on a live instance: an
// activity result in, the next call out.
func BenchmarkEpisode(b *testing.B) {
	for _, encode := range []bool{false, true} {
		b.Run(fmt.Sprintf("encode=%v", encode), func(b *testing.B) {
			// A chain within the history limit, restarted outside the timer.
			const steps = 10_000
			var l *Live
			start := func() {
				var err error
				if l, err = NewLive(steps); err != nil {
					b.Fatal(err)
				}
				l.Encode = encode
			}
			start()
			defer func() { l.Close() }()
			b.ReportAllocs()
			b.ResetTimer()
			for k := range b.N {
				if k%(steps-1) == steps-2 {
					b.StopTimer()
					l.Close()
					start()
					b.StartTimer()
				}
				if err := l.Step(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestWorkload(t *testing.T) {
	recs, events, err := Record(50)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 51 || events != 50*eventsPerStep+4 {
		t.Fatalf("%d records, %d events", len(recs), events)
	}
	if err := NewReplayer().Replay(recs, 50); err != nil {
		t.Fatal(err)
	}
	if err := NewReplayer().Replay(recs, 51); err == nil {
		t.Fatal("a replay with the wrong expected output passed")
	}
	l, err := NewLive(10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 9 {
		if err := l.Step(); err != nil {
			t.Fatal(err)
		}
	}
}
