// Package historypb holds the protobuf schema of stored history events
// (history.proto) and its generated Go types. The runtime encodes and
// decodes history with the faster hand-written codec of package history;
// these types define the format, let tools decode stored events, and let
// tests prove the codec matches the schema.
package historypb

//go:generate protoc --go_out=. --go_opt=paths=source_relative history.proto
