// Package grainpb holds the protobuf messages of the orchestration grain.
package grainpb

// The file is registered by its path from the module root, which keeps its
// name apart from protoactor-go's own grain.proto.
//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=module=github.com/durableactor/durable internal/grainpb/grain.proto
