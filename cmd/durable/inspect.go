package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/durableactor/durable/eventstore"
	"github.com/durableactor/durable/eventstore/pebble"
	"github.com/durableactor/durable/httpapi"
	"github.com/durableactor/durable/index"
	"github.com/durableactor/durable/internal/entitylog"
	"github.com/durableactor/durable/internal/history"
	"github.com/durableactor/durable/orchestration"
)

// offline is a stopped engine's data directory, opened for reading.
type offline struct {
	dir   string
	store *pebble.Store
	log   *slog.Logger
}

func openOffline(dir string, log *slog.Logger) (*offline, error) {
	events := filepath.Join(dir, "events")
	if _, err := os.Stat(events); err != nil {
		return nil, fmt.Errorf("%w: %s holds no engine data (no events directory): %w", errUsage, dir, err)
	}
	store, err := pebble.Open(pebble.Config{Dir: events, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open %s (is an engine running on it? stop it first): %w", events, err)
	}
	return &offline{dir: dir, store: store, log: log}, nil
}

func (o *offline) close() { o.store.Close() }

// index opens the data directory's index, bringing it up to date.
func (o *offline) index(ctx context.Context) (*index.Index, error) {
	return index.Open(ctx, index.Config{Store: o.store, Dir: filepath.Join(o.dir, "index"), Logger: o.log})
}

func inspectCommand(g *globals) *cobra.Command {
	var dir string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "inspect --dir DATA (list | history ID | verify | rebuild-index)",
		Short: "Read a stopped engine's data directory",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "the engine's data directory (required)")
	cmd.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log what the store and index do")
	cmd.MarkPersistentFlagRequired("dir")
	open := func(cmd *cobra.Command) (*offline, error) {
		level := slog.LevelWarn
		if verbose {
			level = slog.LevelInfo
		}
		return openOffline(dir, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})))
	}

	var statuses []string
	var prefix, name string
	var top int
	list := &cobra.Command{
		Use:   "list",
		Short: "List the instances",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := open(cmd)
			if err != nil {
				return err
			}
			defer o.close()
			x, err := o.index(cmd.Context())
			if err != nil {
				return err
			}
			defer x.Close()
			q := index.Query{IDPrefix: prefix, Name: name, Limit: top}
			for _, s := range statuses {
				st, ok := orchestration.ParseStatus(s)
				if !ok {
					return fmt.Errorf("%w: --status %q is not a runtime status", errUsage, s)
				}
				q.Statuses = append(q.Statuses, st)
			}
			page, err := x.List(q)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), page.Instances)
			}
			rows := make([][]string, 0, len(page.Instances))
			for _, in := range page.Instances {
				rows = append(rows, []string{in.ID, in.Name, in.Status.String(), in.Created.Format("2006-01-02T15:04:05Z"), in.WaitsFor()})
			}
			return table(cmd.OutOrStdout(), []string{"INSTANCE", "NAME", "STATUS", "CREATED", "WAITS FOR"}, rows)
		},
	}
	list.Flags().StringSliceVar(&statuses, "status", nil, "runtime statuses")
	list.Flags().StringVar(&prefix, "prefix", "", "an instance-ID prefix")
	list.Flags().StringVar(&name, "name", "", "the orchestrator's name")
	list.Flags().IntVar(&top, "top", 100, "how many")

	hist := &cobra.Command{
		Use:   "history ID",
		Short: "Print an instance's history",
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			o, err := open(cmd)
			if err != nil {
				return err
			}
			defer o.close()
			events, err := readHistory(cmd.Context(), o.store, a[0])
			if err != nil {
				return err
			}
			shaped := httpapi.ShapeHistory(events, true, true)
			if g.json() {
				return printJSON(cmd.OutOrStdout(), shaped)
			}
			return timeline(cmd.OutOrStdout(), shaped)
		},
	}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Read every record of the store, decode it, and check the index against the log",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := open(cmd)
			if err != nil {
				return err
			}
			defer o.close()
			return verifyStore(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	rebuild := &cobra.Command{
		Use:   "rebuild-index",
		Short: "Drop the instance index and make it again from the log",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := open(cmd)
			if err != nil {
				return err
			}
			defer o.close()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return index.Rebuild(cmd.Context(), index.Config{Store: o.store, Dir: filepath.Join(o.dir, "index"), Logger: logger})
		},
	}
	cmd.AddCommand(list, hist, verify, rebuild)
	return cmd
}

// readHistory reads an instance's current history from its stream.
func readHistory(ctx context.Context, s eventstore.Store, id string) ([]orchestration.HistoryEvent, error) {
	events, err := history.ReadCurrent(ctx, s, id)
	if err == nil && len(events) == 0 {
		err = &exitError{exitNotFound, fmt.Errorf("no instance %q in the store", id)}
	}
	return events, err
}

// verifyStore decodes every orchestration and entity record of the log,
// and checks that the index lists what a fresh projection of the log does.
func verifyStore(ctx context.Context, out io.Writer, o *offline) error {
	var dec history.Decoder
	var scratch []orchestration.HistoryEvent
	var records, bad int
	streams := map[string]bool{}
	filter := eventstore.Filter{StreamPrefixes: []string{history.StreamPrefix, entitylog.StreamPrefix}}
	for rec, err := range o.store.ReadAll(ctx, eventstore.ReadAllOptions{Filter: filter}) {
		if err != nil {
			return fmt.Errorf("reading the log: %w", err)
		}
		records++
		streams[rec.Stream] = true
		var derr error
		switch {
		case strings.HasPrefix(rec.Stream, history.StreamPrefix):
			if rec.Type != history.PurgedType {
				scratch, derr = dec.DecodeRecord(scratch[:0], &rec)
			}
		case rec.Type == entitylog.BatchType:
			derr = proto.Unmarshal(rec.Data, &entitylog.Batch{})
		}
		if derr != nil {
			bad++
			fmt.Fprintf(out, "corrupt: %s@%d (position %d): %v\n", rec.Stream, rec.Revision, rec.Position, derr)
		}
	}
	fmt.Fprintf(out, "log: %d records in %d streams, %d corrupt\n", records, len(streams), bad)

	stored, err := o.index(ctx)
	if err != nil {
		return err
	}
	defer stored.Close()
	fresh, err := index.Open(ctx, index.Config{Store: o.store, Logger: o.log})
	if err != nil {
		return err
	}
	defer fresh.Close()
	diffs, instances := 0, 0
	q := index.Query{Limit: 1000}
	for {
		a, err := stored.List(q)
		if err != nil {
			return err
		}
		b, err := fresh.List(q)
		if err != nil {
			return err
		}
		for i := range max(len(a.Instances), len(b.Instances)) {
			instances++
			switch {
			case i >= len(a.Instances):
				diffs++
				fmt.Fprintf(out, "index: misses %s\n", b.Instances[i].ID)
			case i >= len(b.Instances):
				diffs++
				fmt.Fprintf(out, "index: holds %s, which the log does not\n", a.Instances[i].ID)
			case a.Instances[i].ID != b.Instances[i].ID || a.Instances[i].Status != b.Instances[i].Status || a.Instances[i].LastPosition != b.Instances[i].LastPosition:
				diffs++
				fmt.Fprintf(out, "index: %s is %s at %d; the log says %s %s at %d\n", a.Instances[i].ID, a.Instances[i].Status, a.Instances[i].LastPosition,
					b.Instances[i].ID, b.Instances[i].Status, b.Instances[i].LastPosition)
			}
		}
		if a.Next == "" && b.Next == "" {
			break
		}
		if a.Next != b.Next {
			diffs++
			fmt.Fprintln(out, "index: its pages part from the log's; rebuild it (inspect rebuild-index)")
			break
		}
		q.Token = a.Next
	}
	fmt.Fprintf(out, "index: %d instances, %d differences from the log\n", instances, diffs)
	if bad > 0 || diffs > 0 {
		return &exitError{exitFailed, fmt.Errorf("the data directory has %d corrupt records and %d index differences", bad, diffs)}
	}
	return nil
}
