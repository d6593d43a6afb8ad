package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
)

func TestPublishDeliversAndAckSurvivesRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		cfg := be.config(t)
		b := open(t, cfg)
		rec := newRecorder(nil)
		stop := run(t, b, rec.handle)

		ev := Message{ID: "evt-1", Kind: "orchestration", Identity: "order-42", Type: "EventRaised", Payload: []byte(`{"approved":true}`)}
		if err := b.Publish(ctx, Events, ev); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		got := rec.next(t)
		if got.topic != Events {
			t.Errorf("topic = %q, want %q", got.topic, Events)
		}
		if diff := cmp.Diff(ev, got.msg); diff != "" {
			t.Errorf("delivered message (-published +delivered):\n%s", diff)
		}

		tm := Message{ID: "timer-1", Kind: "orchestration", Identity: "order-42", Type: "TimerFired"}
		if err := b.Publish(ctx, Timers, tm); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		got = rec.next(t)
		if got.topic != Timers || got.msg.ID != tm.ID {
			t.Errorf("got %q on %q, want %q on %q", got.msg.ID, got.topic, tm.ID, Timers)
		}
		if len(got.msg.Payload) != 0 {
			t.Errorf("empty payload came back as %q", got.msg.Payload)
		}

		stop()
		closeBus(t, b)

		// Reopen on the same Dir (the embedded server restarts) or Prefix.
		b = open(t, cfg)
		for _, topic := range []Topic{Events, Timers} {
			bl, err := b.Backlog(ctx, topic)
			if err != nil {
				t.Fatalf("Backlog: %v", err)
			}
			if bl != (Backlog{}) {
				t.Errorf("after restart %s backlog = %+v, want empty: an acked message is still stored", topic, bl)
			}
		}
		rec = newRecorder(nil)
		run(t, b, rec.handle)
		if err := b.Publish(ctx, Events, msg("marker")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		for _, d := range rec.until(t, "marker") {
			if d.msg.ID != "marker" {
				t.Errorf("after restart got %q again", d.msg.ID)
			}
		}
	})
}

func TestHandlerErrorRedeliversThenPoisons(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		cfg := be.config(t)
		cfg.MaxDeliveries = 3
		b := open(t, cfg)

		// Errors that may pass are retried past MaxDeliveries; the fifth
		// call's Permanent error moves the message aside at once.
		var calls atomic.Int32
		rec := newRecorder(func(d delivery) error {
			if d.msg.ID != "bad" {
				return nil
			}
			n := calls.Add(1)
			err := fmt.Errorf("grain refused, call %d", n)
			if n == 5 {
				return Permanent(err)
			}
			return err
		})
		stop := run(t, b, rec.handle)
		bad := msg("bad")
		if err := b.Publish(ctx, Events, bad); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		for i := 0; i < 5; i++ {
			if d := rec.next(t); d.msg.ID != "bad" {
				t.Fatalf("delivery %d: got %q, want the failing message again", i+1, d.msg.ID)
			}
		}
		// Stopping waits for the last failure to be poisoned and acked.
		stop()

		p, err := b.Poisoned(ctx, 10)
		if err != nil {
			t.Fatalf("Poisoned: %v", err)
		}
		if len(p) != 1 {
			t.Fatalf("Poisoned returned %d entries, want 1: %+v", len(p), p)
		}
		want := Poisoned{
			Seq:      p[0].Seq,
			Topic:    Events,
			Message:  bad,
			Attempts: 5,
			Error:    "grain refused, call 5",
			At:       p[0].At,
		}
		if diff := cmp.Diff(want, p[0]); diff != "" {
			t.Errorf("poisoned entry (-want +got):\n%s", diff)
		}
		if time.Since(p[0].At) > time.Minute || p[0].At.After(time.Now()) {
			t.Errorf("poisoned At = %v, want just now", p[0].At)
		}
		bl, err := b.Backlog(ctx, Events)
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		if bl != (Backlog{}) {
			t.Errorf("backlog after poisoning = %+v, want empty: the poisoned message was not acked", bl)
		}

		// It is not delivered again, until it is redriven.
		rec2 := newRecorder(nil)
		run(t, b, rec2.handle)
		if err := b.Publish(ctx, Events, msg("marker")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		for _, d := range rec2.until(t, "marker") {
			if d.msg.ID == "bad" {
				t.Errorf("poisoned message delivered again")
			}
		}
		if err := b.Redrive(ctx, p[0].Seq); err != nil {
			t.Fatalf("Redrive: %v", err)
		}
		if d := rec2.next(t); d.msg.ID != "bad" || string(d.msg.Payload) != string(bad.Payload) {
			t.Fatalf("after the redrive got %+v, want the poisoned message", d.msg)
		}
		if left, err := b.Poisoned(ctx, 10); err != nil || len(left) != 0 {
			t.Fatalf("after the redrive the poison topic holds %+v (%v)", left, err)
		}
		if err := b.Redrive(ctx, p[0].Seq); !errors.Is(err, ErrNotPoisoned) {
			t.Fatalf("a second Redrive: %v, want ErrNotPoisoned", err)
		}
	})
}

func TestHandlerPanicsPoisonAfterMaxDeliveries(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Dir: t.TempDir(), Logger: testLogger(t), RetryBackoff: 10 * time.Millisecond, MaxDeliveries: 2}
	b := open(t, cfg)
	rec := newRecorder(func(d delivery) error { panic("handler bug") })
	stop := run(t, b, rec.handle)
	if err := b.Publish(ctx, Events, msg("p")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	rec.next(t)
	rec.next(t)
	stop()
	p, err := b.Poisoned(ctx, 10)
	if err != nil || len(p) != 1 || !strings.Contains(p[0].Error, "handler bug") || p[0].Attempts != 2 {
		t.Fatalf("Poisoned: %+v, %v", p, err)
	}
	if err := b.Discard(ctx, p[0].Seq); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	if err := b.Discard(ctx, p[0].Seq); !errors.Is(err, ErrNotPoisoned) {
		t.Fatalf("a second Discard: %v, want ErrNotPoisoned", err)
	}
}

func TestDeadLetter(t *testing.T) {
	ctx := context.Background()
	b := open(t, Config{Dir: t.TempDir(), Logger: testLogger(t)})
	m := msg("refused")
	if err := b.DeadLetter(ctx, Events, m, "instance x does not exist"); err != nil {
		t.Fatal(err)
	}
	p, err := b.Poisoned(ctx, 10)
	if err != nil || len(p) != 1 {
		t.Fatalf("Poisoned: %+v, %v", p, err)
	}
	if p[0].Topic != Events || p[0].Error != "instance x does not exist" || p[0].Message.ID != m.ID {
		t.Fatalf("dead letter %+v", p[0])
	}
	rec := newRecorder(nil)
	run(t, b, rec.handle)
	if err := b.Redrive(ctx, p[0].Seq); err != nil {
		t.Fatal(err)
	}
	if d := rec.next(t); d.msg.ID != m.ID {
		t.Fatalf("redriven %+v", d.msg)
	}
}

func TestHandlerPanicIsRedelivered(t *testing.T) {
	ctx := context.Background()
	cfg := Config{Dir: t.TempDir(), Logger: testLogger(t), RetryBackoff: 10 * time.Millisecond}
	b := open(t, cfg)
	var panicked atomic.Bool
	rec := newRecorder(func(d delivery) error {
		if !panicked.Swap(true) {
			panic("handler bug")
		}
		return nil
	})
	run(t, b, rec.handle)
	if err := b.Publish(ctx, Events, msg("p")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	rec.next(t)
	if d := rec.next(t); d.msg.ID != "p" {
		t.Fatalf("got %q, want the message again after the panic", d.msg.ID)
	}
}

func TestDuplicateIDDeliveredOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		b := open(t, be.config(t))
		rec := newRecorder(nil)
		stop := run(t, b, rec.handle)

		first, second := msg("dup"), msg("dup")
		second.Payload = []byte("second publish")
		if err := b.Publish(ctx, Events, first); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := b.Publish(ctx, Events, second, msg("marker")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		seen := map[string]bool{}
		var got []delivery
		for !seen["dup"] || !seen["marker"] {
			d := rec.next(t)
			seen[d.msg.ID] = true
			got = append(got, d)
		}
		stop() // every message handed to the handler is done now
		got = append(got, rec.rest()...)

		var dups []Message
		for _, d := range got {
			if d.msg.ID == "dup" {
				dups = append(dups, d.msg)
			}
		}
		if diff := cmp.Diff([]Message{first}, dups); diff != "" {
			t.Errorf("deliveries of the duplicated ID (-want +got):\n%s", diff)
		}
		bl, err := b.Backlog(ctx, Events)
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		if bl != (Backlog{}) {
			t.Errorf("backlog = %+v, want empty", bl)
		}
	})
}

func TestPublishBatchStoredOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		b := open(t, be.config(t))
		batch := make([]Message, 50)
		for i := range batch {
			batch[i] = msg(fmt.Sprintf("batch-%d", i))
		}
		for range 2 {
			// The second publish repeats every ID: JetStream acknowledges
			// and drops each one.
			if err := b.Publish(ctx, Events, batch...); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			// The stream's count, not Backlog: the consumer's pending count
			// is updated a moment after the stream stores a message.
			s, err := b.js.Stream(ctx, b.names.streamOf(Events))
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			si, err := s.Info(ctx)
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			if si.State.Msgs != uint64(len(batch)) {
				t.Errorf("the stream holds %d messages, want %d", si.State.Msgs, len(batch))
			}
		}
		rec := newRecorder(nil)
		stop := run(t, b, rec.handle)
		got := map[string]int{}
		for range batch {
			got[rec.next(t).msg.ID]++
		}
		stop()
		for _, d := range rec.rest() {
			got[d.msg.ID]++
		}
		for _, m := range batch {
			if got[m.ID] != 1 {
				t.Errorf("%s delivered %d times, want once", m.ID, got[m.ID])
			}
		}
	})
}

// timerConfig is a backend's config with one message at a time, so that
// timers are handled in the order the server fired them.
func timerConfig(t *testing.T, be backend) Config {
	cfg := be.config(t)
	cfg.Concurrency = 1
	return cfg
}

func TestScheduleFiresOnTime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		be.needSchedules(t)
		ctx := context.Background()
		b := open(t, timerConfig(t, be))
		rec := newRecorder(nil)
		run(t, b, rec.handle)

		m := Message{ID: "timer-ontime", Kind: "orchestration", Identity: "i1", Type: "TimerFired", Payload: []byte("wake up")}
		at := time.Now().Add(400 * time.Millisecond)
		if err := b.Schedule(ctx, at, m); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		due, ok, err := b.scheduledAt(ctx, m.ID)
		if err != nil || !ok || !due.Equal(at) {
			t.Errorf("scheduledAt = %v, %v, %v; want %v, true, nil", due, ok, err, at)
		}
		bl, err := b.Backlog(ctx, Timers)
		if err != nil || bl.Scheduled != 1 {
			t.Errorf("Backlog(Timers) = %+v, %v; want 1 scheduled", bl, err)
		}

		d := rec.next(t)
		if d.topic != Timers {
			t.Errorf("topic = %q, want %q", d.topic, Timers)
		}
		if diff := cmp.Diff(m, d.msg); diff != "" {
			t.Errorf("fired message (-scheduled +delivered):\n%s", diff)
		}
		if d.at.Before(at) {
			t.Errorf("timer fired %v early", at.Sub(d.at))
		}
		if late := d.at.Sub(at); late > 3*time.Second {
			t.Errorf("timer fired %v late", late)
		}
		t.Logf("fired %v after the requested time", d.at.Sub(at))

		// A fired one-shot schedule is gone.
		if _, ok, err := b.scheduledAt(ctx, m.ID); ok || err != nil {
			t.Errorf("scheduledAt after firing = %v, %v; want false, nil", ok, err)
		}
	})
}

func TestSchedulePastFiresAtOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		be.needSchedules(t)
		ctx := context.Background()
		b := open(t, timerConfig(t, be))
		rec := newRecorder(nil)
		run(t, b, rec.handle)

		start := time.Now()
		if err := b.Schedule(ctx, start.Add(-time.Hour), msg("overdue")); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		d := rec.next(t)
		if d.msg.ID != "overdue" || d.topic != Timers {
			t.Fatalf("got %q on %q", d.msg.ID, d.topic)
		}
		took := d.at.Sub(start)
		if took > 2*time.Second {
			t.Errorf("an overdue timer took %v to fire", took)
		}
		t.Logf("an overdue timer fired %v after Schedule", took)
	})
}

func TestRescheduleReplaces(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		be.needSchedules(t)
		ctx := context.Background()
		b := open(t, timerConfig(t, be))
		rec := newRecorder(nil)
		run(t, b, rec.handle)

		now := time.Now()
		old, repl := msg("retry-timer"), msg("retry-timer")
		old.Payload, repl.Payload = []byte("old"), []byte("new")
		newAt := now.Add(700 * time.Millisecond)
		if err := b.Schedule(ctx, now.Add(300*time.Millisecond), old); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		if err := b.Schedule(ctx, newAt, repl); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		// Fires after the replacement; with one message at a time and
		// timers stored in firing order, the old one would come first.
		if err := b.Schedule(ctx, now.Add(900*time.Millisecond), msg("marker")); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		var fired []delivery
		for _, d := range rec.until(t, "marker") {
			if d.msg.ID == "retry-timer" {
				fired = append(fired, d)
			}
		}
		if len(fired) != 1 {
			t.Fatalf("the rescheduled timer fired %d times, want once", len(fired))
		}
		if string(fired[0].msg.Payload) != "new" {
			t.Errorf("fired payload %q, want the replacement's", fired[0].msg.Payload)
		}
		if fired[0].at.Before(newAt) {
			t.Errorf("fired %v before the replacement's time", newAt.Sub(fired[0].at))
		}
	})
}

func TestUnschedulePreventsFiring(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		be.needSchedules(t)
		ctx := context.Background()
		b := open(t, timerConfig(t, be))
		rec := newRecorder(nil)
		run(t, b, rec.handle)

		now := time.Now()
		if err := b.Schedule(ctx, now.Add(300*time.Millisecond), msg("cancelled")); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		if err := b.Unschedule(ctx, "cancelled"); err != nil {
			t.Fatalf("Unschedule: %v", err)
		}
		if _, ok, err := b.scheduledAt(ctx, "cancelled"); ok || err != nil {
			t.Errorf("scheduledAt after Unschedule = %v, %v; want false, nil", ok, err)
		}
		if err := b.Unschedule(ctx, "never-scheduled"); err != nil {
			t.Errorf("Unschedule of an unknown ID: %v", err)
		}
		if err := b.Schedule(ctx, now.Add(600*time.Millisecond), msg("marker")); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		for _, d := range rec.until(t, "marker") {
			if d.msg.ID == "cancelled" {
				t.Errorf("an unscheduled timer fired")
			}
		}
	})
}

func TestScheduleSurvivesRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		be.needSchedules(t)
		ctx := context.Background()
		cfg := timerConfig(t, be)
		b := open(t, cfg)
		m := msg("approval-timeout")
		at := time.Now().Add(2 * time.Second)
		if err := b.Schedule(ctx, at, m); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		closeBus(t, b)

		b = open(t, cfg)
		if time.Now().Before(at) {
			due, ok, err := b.scheduledAt(ctx, m.ID)
			if err != nil || !ok || !due.Equal(at) {
				t.Errorf("after reopen scheduledAt = %v, %v, %v; want %v, true, nil", due, ok, err, at)
			}
		} else {
			t.Logf("reopening took until after the timer was due; only checking that it fires")
		}
		rec := newRecorder(nil)
		run(t, b, rec.handle)
		d := rec.next(t)
		if diff := cmp.Diff(m, d.msg); diff != "" {
			t.Errorf("fired message (-scheduled +delivered):\n%s", diff)
		}
		if d.at.Before(at) {
			t.Errorf("fired %v early", at.Sub(d.at))
		}
	})
}

// Awkward IDs: dots (subject separators), spaces, wildcards, the escape
// character, leading blanks, control characters and non-ASCII.
var awkwardIDs = []string{
	"order.42",
	"with space",
	"  leading blanks",
	"wild*card>",
	"100%",
	"%2E",
	"tab\tand\nnewline",
	"ünïcødé ✓ 日本",
}

func TestAwkwardIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		b := open(t, timerConfig(t, be))
		rec := newRecorder(nil)
		run(t, b, rec.handle)

		for _, id := range awkwardIDs {
			m := Message{ID: id, Kind: "entity", Identity: "counter@" + id, Type: "Signal " + id, Payload: []byte(id)}
			if err := b.Publish(ctx, Events, m); err != nil {
				t.Fatalf("Publish(%q): %v", id, err)
			}
			d := rec.next(t)
			if diff := cmp.Diff(m, d.msg); diff != "" {
				t.Errorf("ID %q (-published +delivered):\n%s", id, diff)
			}
		}

		if !be.schedules {
			t.Logf("SKIPPING the schedule half: the NATS server at %s is nats-server %s, without message schedules", be.url, be.version)
			return
		}
		future := time.Now().Add(time.Hour)
		for _, id := range awkwardIDs {
			if err := b.Schedule(ctx, future, msg(id)); err != nil {
				t.Fatalf("Schedule(%q): %v", id, err)
			}
		}
		// Each ID has a schedule of its own: dropping one leaves the others
		// (e.g. "%2E" and "." must not share a subject).
		if err := b.Unschedule(ctx, "order.42"); err != nil {
			t.Fatalf("Unschedule: %v", err)
		}
		for _, id := range awkwardIDs {
			_, ok, err := b.scheduledAt(ctx, id)
			if err != nil {
				t.Fatalf("scheduledAt(%q): %v", id, err)
			}
			if want := id != "order.42"; ok != want {
				t.Errorf("scheduledAt(%q) found = %v, want %v", id, ok, want)
			}
		}
		for _, id := range awkwardIDs {
			if err := b.Schedule(ctx, time.Now().Add(-time.Second), msg(id)); err != nil {
				t.Fatalf("Schedule(%q): %v", id, err)
			}
		}
		got := map[string]int{}
		for range awkwardIDs {
			d := rec.next(t)
			if d.topic != Timers {
				t.Errorf("got %q on %q", d.msg.ID, d.topic)
			}
			if diff := cmp.Diff(msg(d.msg.ID), d.msg); diff != "" {
				t.Errorf("fired (-want +got):\n%s", diff)
			}
			got[d.msg.ID]++
		}
		for _, id := range awkwardIDs {
			if got[id] != 1 {
				t.Errorf("timer %q fired %d times, want once", id, got[id])
			}
		}
	})
}

func TestInvalidInput(t *testing.T) {
	ctx := context.Background()
	b := open(t, Config{Dir: t.TempDir(), Logger: testLogger(t)})
	for _, m := range []Message{
		{Kind: "k", Identity: "i", Type: "t"},
		{ID: "x", Identity: "i", Type: "t"},
		{ID: "x", Kind: "k", Type: "t"},
		{ID: "x", Kind: "k", Identity: "i"},
	} {
		if err := b.Publish(ctx, Events, m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Publish(%+v) = %v, want ErrInvalidMessage", m, err)
		}
		if err := b.Schedule(ctx, time.Now(), m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Schedule(%+v) = %v, want ErrInvalidMessage", m, err)
		}
	}
	if err := b.Publish(ctx, "poison", msg("x")); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Publish to an unknown topic = %v, want ErrUnknownTopic", err)
	}
	if err := b.Unschedule(ctx, ""); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Unschedule(\"\") = %v, want ErrInvalidMessage", err)
	}
	closeBus(t, b)
	if err := b.Publish(ctx, Events, msg("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := b.Run(ctx, func(context.Context, Topic, Message) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: t.TempDir(), Prefix: "has.dot"},
		{Dir: t.TempDir(), MaxDeliveries: -1},
		{Dir: t.TempDir(), Listen: "no-port"},
		{Dir: t.TempDir(), Listen: "localhost:nats"},
		{Dir: t.TempDir(), Listen: ":65536"},
		{Dir: t.TempDir(), Listen: ":-1"},
	} {
		if _, err := Open(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestListenOnLoopback(t *testing.T) {
	b := open(t, Config{Dir: t.TempDir(), Listen: ":0", Logger: testLogger(t)})
	addr, ok := b.srv.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() {
		t.Fatalf("listener address %v, want one on loopback", b.srv.Addr())
	}
	nc, err := nats.Connect("nats://" + addr.String())
	if err != nil {
		t.Fatalf("a tool cannot connect to the listener: %v", err)
	}
	nc.Close()

	b2 := open(t, Config{Dir: t.TempDir(), Logger: testLogger(t)})
	if a := b2.srv.Addr(); a != nil {
		t.Errorf("listening on %v although Listen was empty", a)
	}
}

// Open must refuse a server whose timers would never fire.
func TestOpenRefusesServerWithoutSchedules(t *testing.T) {
	found := false
	for _, be := range backends(t) {
		if be.name != "external" {
			continue
		}
		found = true
		if be.schedules {
			t.Skipf("the NATS server at %s (nats-server %s) supports message schedules; nothing to refuse", be.url, be.version)
		}
		cfg := be.config(t)
		cfg.WithoutTimers = false
		_, err := Open(context.Background(), cfg)
		if !errors.Is(err, ErrSchedulesUnsupported) {
			t.Fatalf("Open on nats-server %s = %v, want ErrSchedulesUnsupported", be.version, err)
		}
		if !strings.Contains(err.Error(), be.version) {
			t.Errorf("error %q does not name the server version %s", err, be.version)
		}
		b := open(t, be.config(t)) // WithoutTimers
		if err := b.Schedule(context.Background(), time.Now(), msg("x")); !errors.Is(err, ErrSchedulesUnsupported) {
			t.Errorf("Schedule WithoutTimers = %v, want ErrSchedulesUnsupported", err)
		}
	}
	if !found {
		t.Skip("SKIPPING: no external NATS server (see the external subtest above)")
	}
}

// Stopping Run lets a handler that holds a message finish with a live ctx,
// and its ack reaches the server before Run returns.
func TestStopFinishesMessagesInFlight(t *testing.T) {
	ctx := context.Background()
	b := open(t, Config{Dir: t.TempDir(), Logger: testLogger(t)})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	holding := make(chan struct{})
	ctxErr := make(chan error, 1)
	runErr := make(chan error, 1)
	go func() {
		runErr <- b.Run(runCtx, func(hctx context.Context, _ Topic, m Message) error {
			close(holding)
			// Finish only once the caller has asked Run to stop.
			<-runCtx.Done()
			ctxErr <- hctx.Err()
			return nil
		})
	}()
	if err := b.Publish(ctx, Events, msg("slow")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case <-holding:
	case <-time.After(waitTimeout):
		t.Fatal("message not delivered")
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not stop")
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("the handler's ctx ended with the caller's: %v", err)
	}
	bl, err := b.Backlog(ctx, Events)
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	if bl != (Backlog{}) {
		t.Errorf("backlog after a clean stop = %+v, want empty: the in-flight message was not acked", bl)
	}
}
