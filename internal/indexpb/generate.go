// Package indexpb holds the records of the instance index's database.
package indexpb

//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=module=github.com/durableactor/durable internal/indexpb/index.proto
