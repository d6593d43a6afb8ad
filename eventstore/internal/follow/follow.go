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
// hands the events to deliver to yield, stopping when yield returns false.
// It reports full when it stopped because the page was full, so there may be
// more to read at once.
type Page func(yield func(eventstore.RecordedEvent) bool) (full bool, err error)

// Run repeats page until ctx ends or yield returns false; when ctx ends it
// yields ctx.Err(). changed returns a channel that is closed at the store's
// next commit; Run takes it before each read, so a commit between the read
// and the wait is never missed.
func Run(ctx context.Context, changed func() <-chan struct{}, page Page, yield func(eventstore.RecordedEvent, error) bool) {
	stopped := false
	deliver := func(ev eventstore.RecordedEvent) bool {
		stopped = !yield(ev, nil)
		return !stopped
	}
	for {
		if err := ctx.Err(); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		wake := changed()
		full, err := page(deliver)
		switch {
		case stopped:
			return
		case err != nil:
			yield(eventstore.RecordedEvent{}, err)
			return
		case full:
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
		}
	}
}
