// Package follow runs catch-up subscriptions for the backends that read their
// own storage (memory, pebble): read a page after the cursor, yield it, and
// when a read comes back short, wait for the store's change signal before
// reading again.
//
// Reading pages rather than pushing events to subscribers is what keeps a
// slow subscriber from slowing writers or holding more than one page in
// memory: an append only closes a channel, and a subscriber that falls behind
// simply reads older pages.
package follow

import (
	"context"

	"github.com/durableactor/durable/eventstore"
)

// PageSize is how many events a subscription reads per page.
const PageSize = 512

// Page reads the next page after the subscription's cursor, advancing the
// cursor past every event it examined (also those a filter skipped), and
// yields the events to deliver. It reports full when it stopped because the
// page was full, so there may be more to read at once.
type Page func(ctx context.Context, yield func(eventstore.RecordedEvent) bool) (full, stopped bool, err error)

// Run repeats page until ctx ends or yield returns false. changed returns a
// channel that is closed at the store's next commit; Run takes it before each
// read, so a commit between the read and the wait is never missed.
func Run(ctx context.Context, changed func() <-chan struct{}, page Page, yield func(eventstore.RecordedEvent, error) bool) {
	for {
		wake := changed()
		full, stopped, err := page(ctx, func(ev eventstore.RecordedEvent) bool {
			return yield(ev, nil)
		})
		if stopped {
			return
		}
		if err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		if full {
			if ctx.Err() != nil {
				yield(eventstore.RecordedEvent{}, ctx.Err())
				return
			}
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			yield(eventstore.RecordedEvent{}, ctx.Err())
			return
		}
	}
}
