package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Schedule arranges for m to be delivered on Timers at the time at (at once if
// at is not in the future), durably: the schedule is a message in JetStream,
// so it survives restarts of this process and of the NATS server, and the
// server fires it with no timer code of ours.
//
// There is one schedule per m.ID: scheduling the same ID again replaces the
// earlier schedule, payload and all. Schedule returns once the schedule is
// stored.
//
// How: m is published to the timer's own subject <prefix>.schedules.<ID>
// (the ID escaped into one subject token) in the timers stream, with the
// ADR-51 headers "Nats-Schedule: @at <time>" and "Nats-Schedule-Target:
// <prefix>.timers". When the time comes the server stores a copy of m on the
// target subject, where the Timers consumer picks it up, and purges the
// schedule. The server gives a schedule "Nats-Rollup: sub", so a newer
// schedule on the same subject purges the older one: that is the replace.
//
// Precision: the server fires a schedule when its timer for the earliest
// due schedule runs, and it never arms that timer less than 250ms ahead. So
// a timer fires at its time (never earlier) or up to about 250ms later, and
// one scheduled in the past fires about 250ms after Schedule returns.
func (b *Bus) Schedule(ctx context.Context, at time.Time, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	if b.cfg.WithoutTimers {
		return ErrSchedulesUnsupported
	}
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()

	// This publish differs from Publish's:
	//   - it sends no Nats-Msg-Id: JetStream would then drop a reschedule of
	//     the same ID within the duplicate window as a duplicate instead of
	//     replacing;
	//   - it carries the schedule headers;
	//   - a schedule is not a message for any Watermill subscriber: its subject
	//     is read only by the server's scheduler.
	// The message is still encoded by the same codec, so the fired copy is
	// exactly what a Publish to Timers would have stored.
	msg, err := codec{}.Marshal(b.names.schedule(m.ID), m.toWatermill())
	if err != nil {
		return err
	}
	// jetstream.WithScheduleAt would format the time with time.RFC3339, i.e.
	// truncate it to whole seconds, so a timer could fire up to a second
	// early. The server parses the value with time.Parse(time.RFC3339, ...),
	// which accepts fractional seconds, so we write the header ourselves with
	// nanoseconds.
	msg.Header.Set(jetstream.ScheduleHeader, "@at "+at.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(jetstream.ScheduleTargetHeader, b.names.subject(Timers))
	// The server adds this itself; we say it so the replace is explicit.
	msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.names.streamOf(Timers))); err != nil {
		return fmt.Errorf("delivery: schedule %q: %w", m.ID, err)
	}
	return nil
}

// Unschedule drops the pending schedule of the timer with this ID, if there
// is one; it is not an error if there is none (never scheduled, already
// fired, or already dropped).
//
// A schedule that is firing at this very moment may still be delivered: the
// server may have stored its copy on the timers subject just before the
// purge. Receivers must ignore a timer they no longer wait for, which they
// must do anyway because delivery is at least once.
func (b *Bus) Unschedule(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalidMessage)
	}
	if b.cfg.WithoutTimers {
		return ErrSchedulesUnsupported
	}
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()

	// A purge of the timer's subject, which Watermill has no notion of.
	if err := b.timers.Purge(ctx, jetstream.WithPurgeSubject(b.names.schedule(id))); err != nil {
		return fmt.Errorf("delivery: unschedule %q: %w", id, err)
	}
	return nil
}
