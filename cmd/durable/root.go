package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/durableactor/durable/httpapi"
)

// globals are the flags every command has.
type globals struct {
	url, key, basePath string
	output             string
}

func (g *globals) api() (*api, error) { return newAPI(g.url, g.basePath, g.key) }

// json reports whether the output is JSON.
func (g *globals) json() bool { return g.output == "json" }

func rootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "durable",
		Short:         "Manage durable orchestrations and entities",
		Long:          "durable manages the instances and entities of a durable engine through its HTTP API,\nreads a stopped engine's data directory offline, and runs a demo engine.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("%w: -o %q: the output is table or json", errUsage, g.output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", env("DURABLE_URL", "http://127.0.0.1:7071"), "the server's URL (DURABLE_URL)")
	pf.StringVar(&g.key, "key", os.Getenv("DURABLE_KEY"), "the API key (DURABLE_KEY)")
	pf.StringVar(&g.basePath, "base-path", httpapi.DefaultBasePath, "the API's base path on the server")
	pf.StringVarP(&g.output, "output", "o", "table", "output: table or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %w", errUsage, err) })
	root.AddCommand(
		startCommand(g), statusCommand(g), waitCommand(g), listCommand(g), historyCommand(g),
		raiseCommand(g), controlCommand(g, "terminate", "End a running instance"),
		controlCommand(g, "suspend", "Pause a running instance"), controlCommand(g, "resume", "Continue a suspended instance"),
		restartCommand(g), purgeCommand(g), signalCommand(g), entityCommand(g),
		inspectCommand(g), demoCommand(),
	)
	return root
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// args checks a command's positional arguments: at least min, at most max.
func args(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) < min || len(a) > max {
			return fmt.Errorf("%w: %s takes %s", errUsage, cmd.Name(), cmd.Use)
		}
		return nil
	}
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, in aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// short cuts a payload to fit a column.
func short(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if s == "" || s == "null" {
		return "-"
	}
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// compact renders a decoded JSON value on one line.
func compact(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.RawMessage:
		var decoded any
		if json.Unmarshal(t, &decoded) == nil {
			return compact(decoded)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
