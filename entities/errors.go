package entities

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidID is matched by every *InvalidIDError.
	ErrInvalidID = errors.New("entities: invalid entity ID")
	// ErrUnknownOperation is matched by the failure of an operation the
	// entity's kind does not have.
	ErrUnknownOperation = errors.New("entities: unknown operation")
	// ErrStateTooLarge is matched by the failure of an operation that left
	// the state larger than the limit.
	ErrStateTooLarge = errors.New("entities: state too large")
	// ErrWrongStyle is returned by Context methods that do not belong to the
	// entity's style: SetState in an event-sourced entity, Emit in a
	// function-style one.
	ErrWrongStyle = errors.New("entities: not available in this style of entity")
)

// InvalidIDError reports an entity ID that durable does not accept.
type InvalidIDError struct {
	ID     ID
	Reason string
}

func (e *InvalidIDError) Error() string {
	return fmt.Sprintf("entities: invalid entity ID %q@%q: %s", e.ID.Name, e.ID.Key, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidID) true.
func (e *InvalidIDError) Is(target error) bool { return target == ErrInvalidID }

// DeleteOperation is the operation every entity has, as in Durable
// Functions: unless the kind defines its own, it deletes the state (the
// HTTP API's DELETE of an entity signals it).
const DeleteOperation = "delete"
