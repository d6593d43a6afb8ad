package entities_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/durableactor/durable/entities"
)

var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func op(name string, input string) entities.Operation {
	var in []byte
	if input != "" {
		in = []byte(input)
	}
	return entities.Operation{RequestID: "r-" + name + input, Name: name, Input: in}
}

type counter struct{ Value int }

func counterKind(t *testing.T) *entities.Kind {
	t.Helper()
	k, err := entities.Define("Counter", entities.Ops[counter]{
		"add": entities.Update(func(_ *entities.Context, c *counter, n int) error {
			if n < 0 {
				c.Value += n // changed, then failed: rolled back
				return errors.New("negative amounts are not allowed")
			}
			c.Value += n
			return nil
		}),
		"get": entities.Do(func(_ *entities.Context, c *counter, _ struct{}) (int, error) { return c.Value, nil }),
		"boom": entities.Update(func(_ *entities.Context, c *counter, _ struct{}) error {
			c.Value = -1
			panic("boom")
		}),
		"delete": entities.Update(func(ctx *entities.Context, _ *counter, _ struct{}) error {
			ctx.DeleteState()
			return nil
		}),
		"notify": entities.Update(func(ctx *entities.Context, c *counter, target string) error {
			if err := ctx.SignalEntity(entities.NewID("Counter", target), "add", c.Value); err != nil {
				return err
			}
			_, err := ctx.StartOrchestration("Report", c.Value, "")
			return err
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// outcome is an Outcome as the tables state it.
type outcome struct {
	Result  string
	Failure string
	Signals []string
	Starts  int
	Events  []string
}

func summarize(o entities.Outcome) outcome {
	s := outcome{Result: string(o.Result), Starts: len(o.Starts)}
	if o.Failure != nil {
		s.Failure = o.Failure.Message
	}
	for _, sig := range o.Signals {
		s.Signals = append(s.Signals, fmt.Sprintf("%s %s %s", sig.Target, sig.Operation.Name, sig.Operation.Input))
	}
	for _, ev := range o.Events {
		s.Events = append(s.Events, ev.Type+" "+string(ev.Data))
	}
	return s
}

func TestFunctionStyle(t *testing.T) {
	for _, c := range []struct {
		name  string
		ops   []entities.Operation
		want  []outcome
		state string // "" for none
	}{
		{
			name:  "created by its first operation",
			ops:   []entities.Operation{op("add", "5"), op("add", "2"), op("get", "")},
			want:  []outcome{{}, {}, {Result: "7"}},
			state: `{"Value":7}`,
		},
		{
			name:  "a failed operation changes nothing, the next ones run",
			ops:   []entities.Operation{op("add", "5"), op("add", "-3"), op("add", "1")},
			want:  []outcome{{}, {Failure: "negative amounts are not allowed"}, {}},
			state: `{"Value":6}`,
		},
		{
			name:  "a panic is a failure and is rolled back",
			ops:   []entities.Operation{op("add", "5"), op("boom", ""), op("get", "")},
			want:  []outcome{{}, {Failure: "boom"}, {Result: "5"}},
			state: `{"Value":5}`,
		},
		{
			name: "unknown operation and undecodable input",
			ops:  []entities.Operation{op("nope", ""), op("add", `"x"`)},
			want: []outcome{{Failure: `entities: unknown operation: entity "counter" has no operation "nope"`},
				{Failure: "entities: decode input of counter@k operation \"add\" into *int: json: cannot unmarshal string into Go value of type int"}},
		},
		{
			name: "delete",
			ops:  []entities.Operation{op("add", "5"), op("delete", "")},
			want: []outcome{{}, {}},
		},
		{
			name:  "messages go out with the outcome",
			ops:   []entities.Operation{op("add", "3"), op("notify", `"other"`)},
			want:  []outcome{{}, {Signals: []string{"counter@other add 3"}, Starts: 1}},
			state: `{"Value":3}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := counterKind(t).New(entities.NewID("Counter", "k"), nil, 0)
			var got []outcome
			for _, o := range c.ops {
				got = append(got, summarize(e.Run(now, o)))
			}
			if diff := cmp.Diff(c.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("outcomes (-want +got):\n%s", diff)
			}
			state, has := e.State()
			if has != (c.state != "") || string(state) != c.state {
				t.Fatalf("state %s (%v), want %q", state, has, c.state)
			}
		})
	}
}

func TestStateSizeLimit(t *testing.T) {
	k, err := entities.DefineFunc("blob", func(ctx *entities.Context) error {
		var s string
		if err := ctx.Input(&s); err != nil {
			return err
		}
		return ctx.SetState(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	e := k.New(entities.NewID("blob", "b"), nil, 100)
	if o := e.Run(now, entities.Operation{Name: "set", Input: []byte(`"small"`)}); o.Failure != nil {
		t.Fatal(o.Failure)
	}
	o := e.Run(now, entities.Operation{Name: "set", Input: []byte(`"` + strings.Repeat("x", 200) + `"`)})
	if o.Failure == nil || !strings.Contains(o.Failure.Message, "over the limit of 100") {
		t.Fatalf("an oversized state: %+v", o.Failure)
	}
	if state, _ := e.State(); string(state) != `"small"` {
		t.Fatalf("state after the refused operation: %s", state)
	}
}

func TestIDs(t *testing.T) {
	id, err := entities.ParseID("Counter@Key@With@Ats")
	if err != nil || id != (entities.ID{Name: "counter", Key: "Key@With@Ats"}) || id.String() != "counter@Key@With@Ats" {
		t.Fatalf("%+v %v", id, err)
	}
	if entities.NewID("COUNTER", "a").String() != entities.NewID("counter", "a").String() {
		t.Fatal("names are not case-insensitive")
	}
	if entities.NewID("c", "A").String() == entities.NewID("c", "a").String() {
		t.Fatal("keys are not case-sensitive")
	}
	for _, bad := range []entities.ID{{Name: "", Key: "k"}, {Name: "n", Key: ""}, {Name: "a@b", Key: "k"}, {Name: "n", Key: "k\n"}} {
		if err := bad.Validate(); !errors.Is(err, entities.ErrInvalidID) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	if _, err := entities.ParseID("nokey"); !errors.Is(err, entities.ErrInvalidID) {
		t.Fatalf("ParseID without '@': %v", err)
	}
}

// cart is an event-sourced entity.
type cart struct {
	Items map[string]int
	Total int
}

type added struct {
	Item  string
	Count int
}

func cartKind(t *testing.T, every int) *entities.Kind {
	t.Helper()
	k, err := entities.DefineEventSourced("cart", entities.EventSourced[cart]{
		Commands: map[string]entities.Command[cart]{
			"add": entities.Handle(func(ctx *entities.Context, c cart, a added) (int, error) {
				if a.Count <= 0 {
					return 0, errors.New("count must be positive")
				}
				if err := ctx.Emit("ItemAdded", a); err != nil {
					return 0, err
				}
				return c.Total + a.Count, nil
			}),
			"remove": entities.Handle(func(ctx *entities.Context, c cart, item string) (any, error) {
				if c.Items[item] == 0 {
					return nil, fmt.Errorf("no %s in the cart", item)
				}
				return nil, ctx.Emit("ItemRemoved", item)
			}),
			"clear": entities.Handle(func(ctx *entities.Context, _ cart, _ any) (any, error) {
				ctx.DeleteState()
				return nil, nil
			}),
		},
		Apply: func(c *cart, ev entities.Event) error {
			if c.Items == nil {
				c.Items = map[string]int{}
			}
			switch ev.Type {
			case "ItemAdded":
				var a added
				if err := ev.Decode(&a); err != nil {
					return err
				}
				c.Items[a.Item] += a.Count
				c.Total += a.Count
			case "ItemRemoved":
				var item string
				if err := ev.Decode(&item); err != nil {
					return err
				}
				c.Total -= c.Items[item]
				delete(c.Items, item)
			default:
				return fmt.Errorf("unknown event %q", ev.Type)
			}
			return nil
		},
		SnapshotEvery: every,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestEventSourcedStyle(t *testing.T) {
	e := cartKind(t, 0).New(entities.NewID("cart", "c"), nil, 0)
	got := []outcome{
		summarize(e.Run(now, op("add", `{"Item":"apple","Count":2}`))),
		summarize(e.Run(now, op("add", `{"Item":"pear","Count":0}`))),
		summarize(e.Run(now, op("remove", `"kiwi"`))),
		summarize(e.Run(now, op("add", `{"Item":"kiwi","Count":1}`))),
		summarize(e.Run(now, op("remove", `"apple"`))),
	}
	want := []outcome{
		{Result: "2", Events: []string{`ItemAdded {"Item":"apple","Count":2}`}},
		{Failure: "count must be positive"},
		{Failure: "no kiwi in the cart"},
		{Result: "3", Events: []string{`ItemAdded {"Item":"kiwi","Count":1}`}},
		{Events: []string{`ItemRemoved "apple"`}}, // a nil result encodes to nothing
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if state, _ := e.State(); string(state) != `{"Items":{"kiwi":1},"Total":1}` {
		t.Fatalf("state %s", state)
	}
	if o := e.Run(now, op("clear", "")); o.Failure != nil || len(o.Events) != 1 || o.Events[0].Type != entities.DeletedEventType {
		t.Fatalf("clear: %+v", o)
	}
	if _, has := e.State(); has {
		t.Fatal("a cleared cart still has state")
	}
	// SetState belongs to the other style.
	fn, _ := entities.DefineFunc("f", func(ctx *entities.Context) error { return ctx.Emit("X", 1) })
	if o := fn.New(entities.NewID("f", "1"), nil, 0).Run(now, op("x", "")); o.Failure == nil || !strings.Contains(o.Failure.Message, "not available") {
		t.Fatalf("Emit in a function-style entity: %+v", o.Failure)
	}
}

// TestSnapshotThenReplayEqualsReplay: for random command sequences, the
// state rebuilt from a snapshot taken at any point plus the events after it
// equals the state rebuilt from all the events, and the live state.
func TestSnapshotThenReplayEqualsReplay(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	items := []string{"apple", "pear", "kiwi", "fig"}
	for round := range 200 {
		k := cartKind(t, 0)
		live := k.New(entities.NewID("cart", "p"), nil, 0)
		var events []entities.Event
		var snapshots [][]byte
		var snapHas []bool
		for range 1 + r.IntN(30) {
			var o entities.Outcome
			item := items[r.IntN(len(items))]
			switch r.IntN(5) {
			case 0, 1, 2:
				o = live.Run(now, op("add", fmt.Sprintf(`{"Item":%q,"Count":%d}`, item, r.IntN(3))))
			case 3:
				o = live.Run(now, op("remove", fmt.Sprintf("%q", item)))
			case 4:
				o = live.Run(now, op("clear", ""))
			}
			// The state after an operation is a snapshot that may be
			// taken after its last event: record it at each of its events,
			// and use it at the last.
			events = append(events, o.Events...)
			data, has := live.State()
			for range o.Events {
				snapshots = append(snapshots, data)
				snapHas = append(snapHas, has)
			}
		}
		full := k.New(entities.NewID("cart", "p"), nil, 0)
		if err := full.Replay(events); err != nil {
			t.Fatal(err)
		}
		want, wantHas := live.State()
		if got, has := full.State(); string(got) != string(want) || has != wantHas {
			t.Fatalf("round %d: replay %s (%v), live %s (%v)", round, got, has, want, wantHas)
		}
		// Snapshots were taken after each operation; the events of one
		// operation end at the same index, so use operation boundaries.
		for n := range snapshots {
			if n+1 < len(snapshots) && string(snapshots[n]) == string(snapshots[n+1]) && snapHas[n] == snapHas[n+1] {
				continue
			}
			from := k.New(entities.NewID("cart", "p"), nil, 0)
			if err := from.Restore(snapshots[n], snapHas[n]); err != nil {
				t.Fatal(err)
			}
			if err := from.Replay(events[n+1:]); err != nil {
				t.Fatal(err)
			}
			if got, has := from.State(); string(got) != string(want) || has != wantHas {
				t.Fatalf("round %d: snapshot at event %d then replay: %s (%v), want %s (%v)", round, n, got, has, want, wantHas)
			}
		}
	}
}

// TestUpcast: events stored under an old name or shape are read through
// Upcast.
func TestUpcast(t *testing.T) {
	k, err := entities.DefineEventSourced("cart", entities.EventSourced[cart]{
		Commands: map[string]entities.Command[cart]{"noop": func(*entities.Context, cart) error { return nil }},
		Apply: func(c *cart, ev entities.Event) error {
			if ev.Type != "ItemAdded" {
				return fmt.Errorf("unknown event %q", ev.Type)
			}
			var a added
			if err := ev.Decode(&a); err != nil {
				return err
			}
			c.Total += a.Count
			return nil
		},
		Upcast: func(ev entities.Event) (entities.Event, error) {
			if ev.Type == "ProductAdded" { // the old name; it counted one
				var name string
				if err := ev.Decode(&name); err != nil {
					return ev, err
				}
				return entities.NewEvent("ItemAdded", []byte(fmt.Sprintf(`{"Item":%q,"Count":1}`, name)), nil), nil
			}
			return ev, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := k.New(entities.NewID("cart", "u"), nil, 0)
	if err := e.Replay([]entities.Event{
		entities.NewEvent("ProductAdded", []byte(`"apple"`), nil),
		entities.NewEvent("ItemAdded", []byte(`{"Item":"pear","Count":2}`), nil),
	}); err != nil {
		t.Fatal(err)
	}
	if state, _ := e.State(); string(state) != `{"Items":null,"Total":3}` {
		t.Fatalf("state %s", state)
	}
}

// TestBuiltInDelete: a kind without its own "delete" operation has one
// that deletes the state, as in Durable Functions; event-sourced kinds
// record it as a deletion event.
func TestBuiltInDelete(t *testing.T) {
	k, err := entities.Define("Flag", entities.Ops[bool]{
		"set": entities.Update(func(_ *entities.Context, f *bool, _ struct{}) error { *f = true; return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := k.New(entities.NewID("Flag", "f"), nil, 0)
	e.Run(now, entities.Operation{Name: "set"})
	if _, has := e.State(); !has {
		t.Fatal("no state after set")
	}
	if o := e.Run(now, entities.Operation{Name: "Delete"}); o.Failure != nil {
		t.Fatal(o.Failure)
	}
	if s, has := e.State(); has {
		t.Fatalf("state %s after delete", s)
	}
}
