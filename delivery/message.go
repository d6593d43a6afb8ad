package delivery

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
)

// Message is addressed to one grain.
type Message struct {
	// ID is unique per message. JetStream drops a second publish of the same
	// ID within Config.DuplicateWindow (Nats-Msg-Id), and receivers use it to
	// drop the duplicates that at-least-once delivery lets through. For a
	// timer it also names the schedule: Schedule replaces, Unschedule drops.
	ID string
	// Kind is the target grain kind, e.g. "orchestration".
	Kind string
	// Identity is the target grain identity, e.g. an instance ID.
	Identity string
	// Type says what the message is, e.g. "EventRaised",
	// "ExecutionTerminated", "TimerFired".
	Type string
	// Payload is opaque to this package. Its size is bounded by the NATS
	// server's max_payload (1 MiB by default).
	Payload []byte
}

// Topic is a stream of messages that Run consumes.
type Topic string

const (
	// Events carries external events and control messages
	// (terminate, suspend, resume, entity signals).
	Events Topic = "events"
	// Timers carries fired durable timers (see Bus.Schedule).
	Timers Topic = "timers"
)

// Handler handles one delivered message. Returning nil acknowledges it; an
// error makes JetStream deliver it again after a backoff, until
// Config.MaxDeliveries deliveries have failed and it is moved to the poison
// topic. ctx ends when the Run that called the handler is stopped for good.
type Handler func(ctx context.Context, topic Topic, m Message) error

// Poisoned is a message that failed Config.MaxDeliveries deliveries, as kept
// on the poison topic.
type Poisoned struct {
	// Seq is the message's sequence number in the poison stream; it orders
	// the entries and identifies one for later tooling.
	Seq uint64
	// Topic is the topic the message failed on.
	Topic Topic
	// Message is the message as it was published.
	Message Message
	// Attempts is how many times it was delivered.
	Attempts int
	// Error is the text of the handler's last error.
	Error string
	// At is when it was moved to the poison topic.
	At time.Time
}

// Backlog is a snapshot of one topic's messages that are not yet done with.
type Backlog struct {
	// Pending messages are stored and not yet delivered to any handler.
	Pending uint64
	// InFlight messages are delivered and not yet acknowledged, including
	// those waiting for a redelivery after a handler error.
	InFlight int
	// Scheduled counts the timers not yet fired (Timers only).
	Scheduled uint64
}

// Header names. Watermill's NATS marshaler convention carries the message UUID
// in wmnats.WatermillUUIDHdr and every metadata entry as a header of the same
// name; our fields are metadata entries with these names.
const (
	hdrKind     = "Durable-Kind"
	hdrIdentity = "Durable-Identity"
	hdrType     = "Durable-Type"
	// hdrAttempt is set by the consumer from JetStream's delivery count; it
	// travels with a message moved to the poison topic.
	hdrAttempt = "Durable-Attempt"
)

func (m Message) validate() error {
	for _, f := range []struct{ name, v string }{
		{"ID", m.ID}, {"Kind", m.Kind}, {"Identity", m.Identity}, {"Type", m.Type},
	} {
		if f.v == "" {
			return fmt.Errorf("%w: empty %s", ErrInvalidMessage, f.name)
		}
	}
	return nil
}

// toWatermill maps m onto a Watermill message: ID is the UUID, the grain
// address and type are metadata, the payload is the payload.
func (m Message) toWatermill() *message.Message {
	wm := message.NewMessage(m.ID, m.Payload)
	wm.Metadata.Set(hdrKind, m.Kind)
	wm.Metadata.Set(hdrIdentity, m.Identity)
	wm.Metadata.Set(hdrType, m.Type)
	return wm
}

// fromWatermill is the inverse of toWatermill.
func fromWatermill(wm *message.Message) (Message, error) {
	m := Message{
		ID:       wm.UUID,
		Kind:     wm.Metadata.Get(hdrKind),
		Identity: wm.Metadata.Get(hdrIdentity),
		Type:     wm.Metadata.Get(hdrType),
		Payload:  wm.Payload,
	}
	return m, m.validate()
}

// attemptOf returns the delivery count that the consumer recorded in wm.
func attemptOf(wm *message.Message) int {
	n, _ := strconv.Atoi(wm.Metadata.Get(hdrAttempt))
	return n
}

// codec maps Watermill messages to NATS messages and back. It follows
// watermill-nats' NATSMarshaler (UUID in WatermillUUIDHdr, metadata as
// headers, payload as data; Publish sends that UUID header's value as
// Nats-Msg-Id, as watermill-nats' TrackMsgId does) and adds what that
// marshaler lacks:
//
//   - Header values are escaped (see escapeHeader). NATS header values cannot
//     hold CR or LF, and the client strips leading blanks, so an arbitrary ID,
//     or an error text with a newline on the poison topic, would otherwise be
//     corrupted or break the publish.
//   - Unmarshal keeps only application headers: the server adds Nats-*
//     headers to a fired timer (Nats-Scheduler, Nats-Schedule-Next) that must
//     not travel on if the message is republished to the poison topic, where
//     the server would reject them.
//   - Unmarshal records JetStream's delivery count as hdrAttempt metadata, so
//     the retry middleware can tell the last allowed failure.
//   - Unmarshal never fails: a message it could not decode still reaches the
//     middleware, which moves it to the poison topic instead of letting it be
//     redelivered forever.
type codec struct{}

var (
	_ wmnats.Marshaler   = codec{}
	_ wmnats.Unmarshaler = codec{}
)

// Marshal implements wmnats.Marshaler.
func (codec) Marshal(subject string, wm *message.Message) (*nats.Msg, error) {
	msg := nats.NewMsg(subject)
	msg.Header.Set(wmnats.WatermillUUIDHdr, escapeHeader(wm.UUID))
	for k, v := range wm.Metadata {
		msg.Header.Set(k, escapeHeader(v))
	}
	msg.Data = wm.Payload
	return msg, nil
}

// Unmarshal implements wmnats.Unmarshaler.
func (codec) Unmarshal(msg *nats.Msg) (*message.Message, error) {
	wm := decodeHeaders(msg.Header, msg.Data)
	if md, err := msg.Metadata(); err == nil {
		wm.Metadata.Set(hdrAttempt, strconv.FormatUint(md.NumDelivered, 10))
	}
	return wm, nil
}

// decodeHeaders builds a Watermill message from the application headers.
func decodeHeaders(h nats.Header, data []byte) *message.Message {
	wm := message.NewMessage(unescapeHeader(h.Get(wmnats.WatermillUUIDHdr)), data)
	for k, vs := range h {
		if k == wmnats.WatermillUUIDHdr || strings.HasPrefix(k, "Nats-") || len(vs) == 0 {
			continue
		}
		wm.Metadata.Set(k, unescapeHeader(vs[0]))
	}
	return wm
}

// poisonedFrom decodes one entry of the poison stream.
func poisonedFrom(n names, seq uint64, at time.Time, h nats.Header, data []byte) Poisoned {
	wm := decodeHeaders(h, data)
	return Poisoned{
		Seq:   seq,
		Topic: n.topicOf(wm.Metadata.Get(topicPoisonedKey)),
		Message: Message{
			ID:       wm.UUID,
			Kind:     wm.Metadata.Get(hdrKind),
			Identity: wm.Metadata.Get(hdrIdentity),
			Type:     wm.Metadata.Get(hdrType),
			Payload:  data,
		},
		Attempts: attemptOf(wm),
		Error:    wm.Metadata.Get(reasonPoisonedKey),
		At:       at,
	}
}

const hexDigits = "0123456789ABCDEF"

// escapeToken turns any string into one NATS subject token. Letters, digits
// and "-_@:=+" stay as they are, so typical IDs stay readable in tools; every
// other byte (the token separator '.', the wildcards '*' and '>', white
// space, '%' itself, non-ASCII) becomes %XX. The mapping is injective, so
// distinct IDs get distinct subjects.
func escapeToken(s string) string {
	return escape(s, func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '@' || c == ':' || c == '=' || c == '+'
	})
}

// escapeHeader makes s safe as a NATS header value: '%', control characters
// and blanks become %XX; everything else, UTF-8 included, stays readable.
func escapeHeader(s string) string {
	return escape(s, func(c byte) bool { return c > ' ' && c != 0x7f && c != '%' })
}

func escape(s string, keep func(byte) bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !keep(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// unescapeHeader reverses escapeHeader (and escapeToken). A '%' not followed
// by two hex digits is kept as it is, so values written by other tools pass.
func unescapeHeader(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
