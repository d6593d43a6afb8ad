package entities

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ID identifies one entity: the name of its kind and a key. Names are
// case-insensitive, as in Durable Functions (IDs compare and print with the
// name lower-cased); keys are case-sensitive. An entity's stream is
// "entity-" + ID.String().
type ID struct {
	Name string
	Key  string
}

// NewID returns the ID of the entity of kind name with key.
func NewID(name, key string) ID { return ID{Name: name, Key: key} }

// String is "name@key", the name lower-cased: the entity's grain identity.
func (id ID) String() string { return strings.ToLower(id.Name) + "@" + id.Key }

// Normalized returns id with its name lower-cased.
func (id ID) Normalized() ID { return ID{Name: strings.ToLower(id.Name), Key: id.Key} }

// MaxIDLength bounds the length of an entity ID's string form, in bytes.
const MaxIDLength = 512

// Validate reports what is wrong with id, as an *InvalidIDError: an empty
// name or key, an '@' in the name, invalid UTF-8, a control character, or a
// length over MaxIDLength.
func (id ID) Validate() error {
	reason := ""
	switch {
	case id.Name == "":
		reason = "the name is empty"
	case id.Key == "":
		reason = "the key is empty"
	case strings.Contains(id.Name, "@"):
		reason = "the name contains '@'"
	case !utf8.ValidString(id.Name) || !utf8.ValidString(id.Key):
		reason = "not valid UTF-8"
	case strings.IndexFunc(id.Name+id.Key, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		reason = "contains a control character"
	case len(id.Name)+1+len(id.Key) > MaxIDLength:
		reason = fmt.Sprintf("longer than %d bytes", MaxIDLength)
	}
	if reason != "" {
		return &InvalidIDError{ID: id, Reason: reason}
	}
	return nil
}

// ParseID parses "name@key" (the first '@' ends the name) and validates it.
func ParseID(s string) (ID, error) {
	name, key, ok := strings.Cut(s, "@")
	if !ok {
		return ID{}, &InvalidIDError{ID: ID{Name: s}, Reason: "no '@' between name and key"}
	}
	id := ID{Name: name, Key: key}
	if err := id.Validate(); err != nil {
		return ID{}, err
	}
	return id.Normalized(), nil
}
