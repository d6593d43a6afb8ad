package index

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/durableactor/durable/orchestration"
)

// Query selects instances. Every filter left at its zero value keeps all.
type Query struct {
	// Statuses keeps the instances in one of these statuses.
	Statuses []orchestration.Status
	// CreatedFrom and CreatedTo keep those created in [CreatedFrom,
	// CreatedTo).
	CreatedFrom, CreatedTo time.Time
	// Name keeps the instances of one orchestrator (case-insensitive).
	Name string
	// IDPrefix keeps those whose ID starts with it.
	IDPrefix string
	// CustomStatus keeps those whose custom status (as stored, JSON by
	// default) contains it; it reads only custom statuses kept inline.
	CustomStatus string
	// Limit bounds the page; 100 when zero.
	Limit int
	// Token continues a previous page: the Next of its Page.
	Token string
}

// Page is a page of instances and the token of the next one, empty when
// there is none.
type Page struct {
	Instances []Instance
	Next      string
}

// ErrBadToken is matched by the error List returns for a continuation token
// it did not make, or made for another query.
var ErrBadToken = errors.New("index: bad continuation token")

// An ordering is the secondary order a query reads: instances by creation
// time (within a status, a name and status, or all), or by ID.
type ordering byte

const (
	byCreated ordering = 'c'
	byID      ordering = 'i'
)

// source is one ordered key range a query reads: keys are base followed by
// a suffix (creation time then ID, or the ID alone), and the suffixes are
// in [lower, upper) (upper nil: to the end of base).
type source struct {
	base, lower, upper []byte
}

// plan picks the ordering for q and its sources. An ID prefix alone reads
// the records in ID order; otherwise the instances are read in order of
// creation from the most selective table: name and status, status, or
// creation alone, merging one source per status. The other filters are
// checked on each record.
func plan(q *Query) (ordering, []source) {
	if q.IDPrefix != "" && q.Name == "" && len(q.Statuses) == 0 && q.CreatedFrom.IsZero() && q.CreatedTo.IsZero() {
		return byID, []source{{base: []byte{tableInstance}, lower: []byte(q.IDPrefix), upper: upper([]byte(q.IDPrefix))}}
	}
	lower := appendTime(nil, q.CreatedFrom)
	var up []byte
	if !q.CreatedTo.IsZero() {
		up = appendTime(nil, q.CreatedTo)
	}
	statuses := q.Statuses
	if q.Name != "" && len(statuses) == 0 {
		for s := range orchestration.StatusSuspended + 1 {
			statuses = append(statuses, s)
		}
	}
	var sources []source
	for _, s := range statuses {
		base := []byte{tableStatus, byte(s)}
		if q.Name != "" {
			base = nameStatusPrefix(q.Name, s)
		}
		sources = append(sources, source{base: base, lower: lower, upper: up})
	}
	if len(sources) == 0 {
		sources = []source{{base: []byte{tableCreated}, lower: lower, upper: up}}
	}
	return byCreated, sources
}

// List returns a page of the instances q selects, in order of creation
// (or of ID when it selects by ID prefix alone). A page reads the ordering
// from where the token says the last one ended, so it costs what it
// returns and what it skips by filters the ordering does not hold, not a
// scan of every instance; and a token stays valid while instances are
// written (a page then holds the instances the ordering has at the time it
// is read).
func (x *Index) List(q Query) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	order, sources := plan(&q)
	after, err := decodeToken(q.Token, order)
	if err != nil {
		return Page{}, err
	}
	var page Page
	var last []byte
	err = x.merge(sources, after, func(suffix []byte, in *Instance) bool {
		if !q.matches(in) {
			return true
		}
		if len(page.Instances) == limit {
			page.Next = encodeToken(order, last)
			return false
		}
		page.Instances = append(page.Instances, *in)
		last = append(last[:0], suffix...)
		return true
	})
	return page, err
}

func (q *Query) matches(in *Instance) bool {
	switch {
	case len(q.Statuses) > 0 && !containsStatus(q.Statuses, in.Status),
		!q.CreatedFrom.IsZero() && in.Created.Before(q.CreatedFrom),
		!q.CreatedTo.IsZero() && !in.Created.Before(q.CreatedTo),
		q.Name != "" && !strings.EqualFold(q.Name, in.Name),
		!strings.HasPrefix(in.ID, q.IDPrefix),
		q.CustomStatus != "" && (!in.customInline || !bytes.Contains(in.CustomStatus, []byte(q.CustomStatus))):
		return false
	}
	return true
}

func containsStatus(ss []orchestration.Status, s orchestration.Status) bool {
	for _, c := range ss {
		if c == s {
			return true
		}
	}
	return false
}

// merge reads the sources in the order of their suffixes, after the
// suffix after (nil: from the start), and calls yield with each instance's
// record until it returns false.
func (x *Index) merge(sources []source, after []byte, yield func(suffix []byte, in *Instance) bool) error {
	x.sync()
	x.dbMu.RLock()
	defer x.dbMu.RUnlock()
	db := x.db
	if db == nil {
		return ErrStopped
	}
	type cursor struct {
		it   *pebble.Iterator
		base int
	}
	var cursors []cursor
	defer func() {
		for _, c := range cursors {
			c.it.Close()
		}
	}()
	for _, s := range sources {
		opts := &pebble.IterOptions{LowerBound: append(bytes.Clone(s.base), s.lower...), UpperBound: upper(s.base)}
		if s.upper != nil {
			opts.UpperBound = append(bytes.Clone(s.base), s.upper...)
		}
		it, err := db.NewIter(opts)
		if err != nil {
			return fmt.Errorf("index: read: %w", err)
		}
		cursors = append(cursors, cursor{it, len(s.base)})
		if after != nil {
			it.SeekGE(append(append(bytes.Clone(s.base), after...), 0))
		} else {
			it.First()
		}
	}
	for {
		best := -1
		for i, c := range cursors {
			if c.it.Valid() && (best < 0 || bytes.Compare(c.it.Key()[c.base:], cursors[best].it.Key()[cursors[best].base:]) < 0) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		c := cursors[best]
		key := c.it.Key()
		var in *Instance
		if key[0] == tableInstance {
			in = x.get(string(key[1:]))
		} else {
			in = x.get(string(key[len(key)-idLen(key):]))
		}
		if in != nil && !yield(key[c.base:], in) {
			break
		}
		c.it.Next()
	}
	for _, c := range cursors {
		if err := c.it.Error(); err != nil {
			return fmt.Errorf("index: read: %w", err)
		}
	}
	return nil
}

// idLen returns the length of the ID that ends a secondary key of the
// creation orderings: what follows the 8-byte time after its base. The
// base's length varies with the name, so it is found from the key's table.
func idLen(key []byte) int {
	switch key[0] {
	case tableCreated:
		return len(key) - 9
	case tableStatus:
		return len(key) - 10
	case tableName:
		i := bytes.IndexByte(key, 0)
		return len(key) - (i + 2 + 8)
	}
	return len(key) - 1
}

func encodeToken(o ordering, suffix []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{byte(o)}, suffix...))
}

func decodeToken(token string, o ordering) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	switch {
	case err != nil || len(b) < 2:
		return nil, fmt.Errorf("%w: %q is not one", ErrBadToken, token)
	case ordering(b[0]) != o:
		return nil, fmt.Errorf("%w: it continues a query of other filters", ErrBadToken)
	case o == byCreated && len(b) < 10:
		return nil, fmt.Errorf("%w: %q is not one", ErrBadToken, token)
	}
	return b[1:], nil
}

// Overdue returns the instances whose due time (see Instance.Due) is
// before t, earliest first, at most limit of them.
func (x *Index) Overdue(t time.Time, limit int) []string {
	var ids []string
	x.scan([]byte{tableDue}, dueKey(t, ""), func(k, _ []byte) bool {
		ids = append(ids, string(k[9:]))
		return len(ids) < limit
	})
	return ids
}

// InFlight returns the instances that have work in flight (see
// Instance.InFlight).
func (x *Index) InFlight() []string { return x.ids([]byte{tableInFlight}) }

// Stranded returns the instances that have no durable reason to run again
// (see Instance.Stranded). There should never be any.
func (x *Index) Stranded() []string { return x.ids([]byte{tableStranded}) }

// ids returns the IDs a one-byte table holds.
func (x *Index) ids(table []byte) []string {
	var ids []string
	x.scan(table, upper(table), func(k, _ []byte) bool {
		ids = append(ids, string(k[1:]))
		return true
	})
	return ids
}

// scan calls fn with the keys in [lower, upper) and their values until it
// returns false. An error reading ends the scan: what the index reads is
// derived data, and the callers act again on their next pass.
func (x *Index) scan(lower, upper []byte, fn func(k, v []byte) bool) {
	x.sync()
	x.dbMu.RLock()
	defer x.dbMu.RUnlock()
	db := x.db
	if db == nil {
		return
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		x.log.Warn("reading the instance index", "error", err)
		return
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	if err := it.Error(); err != nil {
		x.log.Warn("reading the instance index", "error", err)
	}
}
