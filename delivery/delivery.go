package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus carries messages addressed to grains over NATS JetStream. It is safe
// for concurrent use. Open one per engine process and Close it when done.
type Bus struct {
	cfg   Config
	log   *slog.Logger
	wmLog watermill.LoggerAdapter
	names names

	srv      *server.Server // nil when cfg.URL names an external server
	nc       *nats.Conn     // publishing, schedules and management
	ncClosed chan struct{}
	js       jetstream.JetStream
	timers   jetstream.Stream
	poison   jetstream.Stream

	closing   chan struct{} // closed by Close: every Run stops
	closeOnce sync.Once

	mu     sync.Mutex
	closed bool
	active sync.WaitGroup // calls and Runs that Close must wait for
}

// names derives every subject, stream and consumer name from the prefix.
//
//	<prefix>.events             Events   stream <prefix>-events, consumer <prefix>-events
//	<prefix>.timers             Timers   stream <prefix>-timers, consumer <prefix>-timers
//	<prefix>.schedules.<id>     one pending schedule per timer ID, in <prefix>-timers
//	<prefix>.poison             poisoned messages, stream <prefix>-poison
//	<prefix>.deliver.<topic>    where JetStream pushes a topic to its consumers
type names struct{ prefix string }

func (n names) stream(kind string) string { return n.prefix + "-" + kind }
func (n names) subject(t Topic) string    { return n.prefix + "." + string(t) }
func (n names) consumer(t Topic) string   { return n.prefix + "-" + string(t) }
func (n names) deliver(t Topic) string    { return n.prefix + ".deliver." + string(t) }
func (n names) poisonSubject() string     { return n.prefix + ".poison" }
func (n names) schedules() string         { return n.prefix + ".schedules.>" }
func (n names) schedule(id string) string { return n.prefix + ".schedules." + escapeToken(id) }
func (n names) streamOf(t Topic) string   { return n.stream(string(t)) }

// topicOf maps a subject back to its topic ("" if it is not one).
func (n names) topicOf(subject string) Topic {
	for _, t := range []Topic{Events, Timers} {
		if subject == n.subject(t) {
			return t
		}
	}
	return ""
}

// Open starts the embedded NATS server (unless cfg.URL names an external one),
// connects, and creates the streams and durable consumers this package needs,
// or brings existing ones to the current configuration. It is idempotent:
// opening the same Dir (or Prefix on the same external server) again finds
// every pending message and schedule where it was.
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Bus{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "delivery"),
		wmLog:    newWatermillLogger(cfg.Logger),
		names:    names{cfg.Prefix},
		closing:  make(chan struct{}),
		ncClosed: make(chan struct{}),
	}
	if cfg.URL == "" {
		if b.srv, err = startServer(cfg); err != nil {
			return nil, err
		}
	}
	if b.nc, err = b.connect("durable-delivery", b.ncClosed); err != nil {
		b.shutdownServer()
		return nil, err
	}
	// An asynchronous publish whose acknowledgement never comes (Publish
	// stopped waiting at its deadline) is dropped from the client's pending
	// set after RequestTimeout too.
	if b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncTimeout(cfg.RequestTimeout)); err == nil {
		err = b.provision(ctx)
	}
	if err != nil {
		b.nc.Close()
		<-b.ncClosed
		b.shutdownServer()
		return nil, err
	}
	return b, nil
}

// connect opens a client connection: in-process to the embedded server, or to
// cfg.URL. closed is closed when the connection is closed for good.
func (b *Bus) connect(name string, closed chan struct{}) (*nats.Conn, error) {
	opts := connOptions(name, b.cfg.Logger, b.cfg.ShutdownTimeout, closed)
	url := b.cfg.URL
	if b.srv != nil {
		url = ""
		opts = append(opts, nats.InProcessServer(b.srv))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("delivery: connect to NATS (%s): %w", b.where(), err)
	}
	return nc, nil
}

// where names the server for error messages, without credentials.
func (b *Bus) where() string {
	if b.srv != nil {
		return "embedded server"
	}
	u, err := neturl.Parse(b.cfg.URL)
	if err != nil {
		return "the configured URL"
	}
	return u.Redacted()
}

// provision creates or updates the streams and consumers.
//
// Events and Timers use work-queue retention: a message is removed once a
// consumer acknowledges it, so the streams hold only work that is not done,
// and no age limit can drop a 72-hour timer. The timers stream also holds the
// pending schedules on <prefix>.schedules.>, which no consumer reads, so they
// stay until they fire or are replaced or purged.
func (b *Bus) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	n := b.names

	// The timers stream goes first: if the server cannot schedule, nothing
	// else is created.
	timersCfg := jetstream.StreamConfig{
		Name:        n.streamOf(Timers),
		Description: "durable: fired timers (" + n.subject(Timers) + ") and their pending schedules (" + n.schedules() + ")",
		Subjects:    []string{n.subject(Timers), n.schedules()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DuplicateWindow,
		// Message schedules need roll-ups: the server adds "Nats-Rollup: sub"
		// to every schedule, so a new schedule on a timer's subject replaces
		// the old one, and a fired one-shot schedule purges its subject. It
		// also rejects DiscardNew on such a stream; the default is DiscardOld.
		AllowRollup:       true,
		AllowMsgSchedules: !b.cfg.WithoutTimers,
	}
	timers, err := b.js.CreateOrUpdateStream(ctx, timersCfg)
	if err != nil {
		return fmt.Errorf("delivery: create stream %s: %w", timersCfg.Name, err)
	}
	if !b.cfg.WithoutTimers && !timers.CachedInfo().Config.AllowMsgSchedules {
		// Servers before 2.12 do not know the field and silently drop it.
		return fmt.Errorf("%w: the server is nats-server %s", ErrSchedulesUnsupported, b.nc.ConnectedServerVersion())
	}
	b.timers = timers

	events := jetstream.StreamConfig{
		Name:        n.streamOf(Events),
		Description: "durable: external events and control messages addressed to grains",
		Subjects:    []string{n.subject(Events)},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DuplicateWindow,
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, events); err != nil {
		return fmt.Errorf("delivery: create stream %s: %w", events.Name, err)
	}

	// The poison stream keeps everything until an operator removes it.
	poison := jetstream.StreamConfig{
		Name:        n.stream("poison"),
		Description: "durable: messages that failed every delivery",
		Subjects:    []string{n.poisonSubject()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.DuplicateWindow,
	}
	if b.poison, err = b.js.CreateOrUpdateStream(ctx, poison); err != nil {
		return fmt.Errorf("delivery: create stream %s: %w", poison.Name, err)
	}

	for _, t := range []Topic{Events, Timers} {
		if err := b.provisionConsumer(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// provisionConsumer creates the durable push consumer of topic t.
//
// It is created here, not by watermill-nats on subscribe, for two reasons:
// Open must leave the durable state in place before anything runs, and the
// legacy nats.go subscribe that watermill-nats uses deletes a consumer it
// created itself when the subscription is unsubscribed or drained, which
// would happen on every Run stop. A consumer that already exists is only
// bound to, and outlives every subscription.
//
// It is a push consumer with a deliver group because that is what
// watermill-nats' JetStream mode subscribes to (js.QueueSubscribe): every Run
// of every Bus on the same Prefix joins the group and shares the messages.
// MaxDeliver is unlimited because the poison decision is ours (see Run): the
// server must keep redelivering until the handler succeeds or we poison it.
func (b *Bus) provisionConsumer(ctx context.Context, t Topic) error {
	n := b.names
	cfg := jetstream.ConsumerConfig{
		Durable:        n.consumer(t),
		Description:    "durable: handlers of " + n.subject(t),
		DeliverSubject: n.deliver(t),
		DeliverGroup:   n.consumer(t),
		FilterSubject:  n.subject(t),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  b.cfg.MaxAckPending,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		Replicas:       b.cfg.Replicas,
	}
	if _, err := b.js.CreateOrUpdatePushConsumer(ctx, n.streamOf(t), cfg); err != nil {
		return fmt.Errorf("delivery: create consumer %s: %w", cfg.Durable, err)
	}
	return nil
}

// Close stops every Run (each finishes the messages it holds first, see Run),
// waits for calls in progress, closes the connections and shuts the embedded
// server down cleanly. All data stays in Dir. Close is idempotent; it returns
// an error only to fit io.Closer, currently always nil.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.closing)
		// Publish and Schedule return only after JetStream confirmed the
		// write, so once they are done there is nothing left to flush.
		b.active.Wait()
		b.nc.Close()
		<-b.ncClosed
		b.shutdownServer()
	})
	return nil
}

func (b *Bus) shutdownServer() {
	if b.srv == nil {
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// begin registers a call that must finish before Close tears down, or reports
// ErrClosed.
func (b *Bus) begin() (done func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.active.Add(1)
	return b.active.Done, nil
}

// requestContext bounds one JetStream request by cfg.RequestTimeout.
func (b *Bus) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.RequestTimeout)
}

// Backlog reports how many messages of topic are not done with yet: a
// snapshot for operators and tests, exact at the moment each count is read.
func (b *Bus) Backlog(ctx context.Context, topic Topic) (Backlog, error) {
	if topic != Events && topic != Timers {
		return Backlog{}, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	done, err := b.begin()
	if err != nil {
		return Backlog{}, err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()

	c, err := b.js.PushConsumer(ctx, b.names.streamOf(topic), b.names.consumer(topic))
	if err != nil {
		return Backlog{}, fmt.Errorf("delivery: consumer %s: %w", b.names.consumer(topic), err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return Backlog{}, fmt.Errorf("delivery: consumer %s: %w", b.names.consumer(topic), err)
	}
	bl := Backlog{Pending: ci.NumPending, InFlight: ci.NumAckPending}
	if topic == Timers {
		// The timers stream holds the fired timers on the timers subject and
		// one message per pending schedule on the schedule subjects.
		si, err := b.timers.Info(ctx, jetstream.WithSubjectFilter(b.names.subject(Timers)))
		if err != nil {
			return Backlog{}, fmt.Errorf("delivery: stream %s: %w", b.names.streamOf(Timers), err)
		}
		fired := si.State.Subjects[b.names.subject(Timers)]
		if si.State.Msgs > fired {
			bl.Scheduled = si.State.Msgs - fired
		}
	}
	return bl, nil
}

// Poisoned returns up to limit messages from the poison topic, oldest first
// (limit <= 0: all of them).
func (b *Bus) Poisoned(ctx context.Context, limit int) ([]Poisoned, error) {
	done, err := b.begin()
	if err != nil {
		return nil, err
	}
	defer done()

	var out []Poisoned
	// "Next message on the subject at or after seq" walks the stream in order
	// without creating a consumer; one request per entry.
	for seq := uint64(1); limit <= 0 || len(out) < limit; {
		rctx, cancel := b.requestContext(ctx)
		raw, err := b.poison.GetMsg(rctx, seq, jetstream.WithGetMsgSubject(b.names.poisonSubject()))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("delivery: read poison topic: %w", err)
		}
		out = append(out, poisonedFrom(b.names, raw.Sequence, raw.Time, raw.Header, raw.Data))
		seq = raw.Sequence + 1
	}
	return out, nil
}

// DeadLetter keeps m on the poison topic as a message that could not be
// delivered on topic, with the reason; Poisoned lists it, and Redrive
// publishes it on topic again. Receivers use it for messages they cannot
// hand over and must not drop silently.
func (b *Bus) DeadLetter(ctx context.Context, topic Topic, m Message, reason string) error {
	if topic != Events && topic != Timers {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if err := m.validate(); err != nil {
		return err
	}
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	wm := m.toWatermill()
	wm.Metadata.Set(reasonPoisonedKey, reason)
	wm.Metadata.Set(topicPoisonedKey, b.names.subject(topic))
	ctx, cancel := b.requestContext(ctx)
	defer cancel()
	if err := b.publish(ctx, b.names.stream("poison"), []*nats.Msg{encode(b.names.poisonSubject(), wm)}); err != nil {
		return fmt.Errorf("delivery: keep a dead letter: %w", err)
	}
	return nil
}

// Redrive publishes the poisoned message with sequence number seq on the
// topic it failed on, to be handled now (a timer fires at once), and takes
// it off the poison topic. It returns ErrNotPoisoned if seq is not there.
// The message keeps its ID, so its receiver still drops it if it had it
// after all; JetStream's duplicate window does not, as the redrive is
// published under an ID of its own.
func (b *Bus) Redrive(ctx context.Context, seq uint64) error {
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()
	raw, err := b.poison.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w: %d", ErrNotPoisoned, seq)
	}
	if err != nil {
		return fmt.Errorf("delivery: read poisoned message %d: %w", seq, err)
	}
	p := poisonedFrom(b.names, raw.Sequence, raw.Time, raw.Header, raw.Data)
	if p.Topic != Events && p.Topic != Timers {
		return fmt.Errorf("delivery: poisoned message %d names no topic to redrive to", seq)
	}
	msg := encode(b.names.subject(p.Topic), p.Message.toWatermill())
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(b.names.streamOf(p.Topic)),
		jetstream.WithMsgID(fmt.Sprintf("%s redrive %d", p.Message.ID, seq))); err != nil {
		return fmt.Errorf("delivery: redrive poisoned message %d: %w", seq, err)
	}
	return b.deletePoisoned(ctx, seq)
}

// Discard takes the poisoned message with sequence number seq off the
// poison topic for good. It returns ErrNotPoisoned if seq is not there.
func (b *Bus) Discard(ctx context.Context, seq uint64) error {
	done, err := b.begin()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := b.requestContext(ctx)
	defer cancel()
	return b.deletePoisoned(ctx, seq)
}

func (b *Bus) deletePoisoned(ctx context.Context, seq uint64) error {
	err := b.poison.DeleteMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return fmt.Errorf("%w: %d", ErrNotPoisoned, seq)
	}
	if err != nil {
		return fmt.Errorf("delivery: remove poisoned message %d: %w", seq, err)
	}
	return nil
}
