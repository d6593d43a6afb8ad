package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
)

func TestEscapeToken(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"order-42", "order-42"},
		{"counter@key:1", "counter@key:1"},
		{"a.b", "a%2Eb"},
		{"%2E", "%252E"},
		{"with space", "with%20space"},
		{"*>", "%2A%3E"},
		{"ü", "%C3%BC"},
	} {
		if got := escapeToken(tc.in); got != tc.want {
			t.Errorf("escapeToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	seen := map[string]string{}
	for _, id := range append(awkwardIDs, "a.b", "a%2Eb", "", "x") {
		tok := escapeToken(id)
		if strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Errorf("escapeToken(%q) = %q is not a single literal subject token", id, tok)
		}
		if other, ok := seen[tok]; ok && other != id {
			t.Errorf("%q and %q both escape to %q", id, other, tok)
		}
		seen[tok] = id
		if back := unescapeHeader(tok); back != id {
			t.Errorf("unescape(escapeToken(%q)) = %q", id, back)
		}
	}
}

func TestEscapeHeader(t *testing.T) {
	for _, s := range append(awkwardIDs, "", "plain", "50% off", "line1\r\nline2", "%zz", "trailing%") {
		e := escapeHeader(s)
		if strings.ContainsAny(e, " \t\r\n") {
			t.Errorf("escapeHeader(%q) = %q still has blanks or line breaks", s, e)
		}
		if back := unescapeHeader(e); back != s {
			t.Errorf("unescapeHeader(escapeHeader(%q)) = %q", s, back)
		}
	}
	if got := escapeHeader("ünïcødé"); got != "ünïcødé" {
		t.Errorf("escapeHeader kept non-ASCII unreadable: %q", got)
	}
	// Values written by other tools with a stray '%' pass unchanged.
	if got := unescapeHeader("100%"); got != "100%" {
		t.Errorf("unescapeHeader(%q) = %q", "100%", got)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	m := Message{ID: " id.with\nall", Kind: "entity", Identity: "c@k", Type: "Signal", Payload: []byte{0, 1, 2}}
	nm, err := codec{}.Marshal("durable.events", m.toWatermill())
	if err != nil {
		t.Fatal(err)
	}
	// Through the wire format and back, as the server would hand it out.
	nm.Header.Set("Nats-Scheduler", "durable.schedules.x")
	wm, err := codec{}.Unmarshal(nm)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromWatermill(wm)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, ok := wm.Metadata["Nats-Scheduler"]; ok {
		t.Errorf("server header Nats-Scheduler leaked into the metadata")
	}

	// A message from elsewhere without our headers still decodes, and is
	// reported invalid rather than failing the subscriber.
	wm, err = codec{}.Unmarshal(nats.NewMsg("durable.events"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fromWatermill(wm); err == nil {
		t.Errorf("a message without ID decoded as valid")
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	for _, tc := range []struct {
		delivered uint64
		want      time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{1000, time.Second},
	} {
		if got := b.WaitTime(tc.delivered); got != tc.want {
			t.Errorf("WaitTime(%d) = %v, want %v", tc.delivered, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	n := names{"durable"}
	for _, topic := range []Topic{Events, Timers} {
		if got := n.topicOf(n.subject(topic)); got != topic {
			t.Errorf("topicOf(subject(%q)) = %q", topic, got)
		}
	}
	if got := n.topicOf(n.poisonSubject()); got != "" {
		t.Errorf("topicOf(poison subject) = %q, want none", got)
	}
	if got, want := n.schedule("a.b"), "durable.schedules.a%2Eb"; got != want {
		t.Errorf("schedule subject = %q, want %q", got, want)
	}
}
