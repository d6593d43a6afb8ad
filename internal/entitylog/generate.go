// Package entitylog is the storage format of entity streams and reads an
// entity back from its stream.
package entitylog

//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=module=github.com/durableactor/durable internal/entitylog/entitylog.proto
