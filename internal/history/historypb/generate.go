// Package historypb holds the protobuf schema of stored history events
// (history.proto) and its generated Go types. The runtime encodes and
// decodes history with the faster hand-written codec of package history;
// these types define the format, let tools decode stored events, and let
// tests prove the codec matches the schema.
package historypb

// The file is registered by its path from the module root, so its name
// cannot collide with another library's history.proto.
//go:generate protoc --proto_path=../../.. --go_out=../../.. --go_opt=module=github.com/durableactor/durable internal/history/historypb/history.proto
