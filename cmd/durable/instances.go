package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/durableactor/durable/httpapi"

	"github.com/spf13/cobra"
)

func startCommand(g *globals) *cobra.Command {
	var id, input string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "start NAME",
		Short: "Start an orchestration",
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			r := request{method: http.MethodPost, path: "/orchestrators/" + url.PathEscape(a[0]), query: url.Values{}}
			if id != "" {
				r.path += "/" + url.PathEscape(id)
			}
			if input != "" {
				if r.body, err = jsonArg("input", input); err != nil {
					return err
				}
			}
			if wait > 0 {
				r.query.Set("timeout", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			}
			resp, err := api.do(cmd.Context(), r)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if resp.status == http.StatusAccepted {
				var cs httpapi.CheckStatusPayload
				if err := decodeJSON(resp.body, &cs); err != nil {
					return err
				}
				if g.json() {
					err = printJSON(out, cs)
				} else {
					fmt.Fprintln(out, cs.ID)
				}
				if err == nil && wait > 0 {
					err = &exitError{exitFailed, fmt.Errorf("instance %s is still running after %s", cs.ID, wait)}
				}
				return err
			}
			// Waited: the output (200, completed), or the status of an
			// instance that failed or was terminated.
			var st httpapi.StatusPayload
			if decodeJSON(resp.body, &st) == nil && st.InstanceID != "" {
				return printEnded(out, g, &st)
			}
			fmt.Fprintln(out, strings.TrimSpace(string(resp.body)))
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the instance ID (random by default)")
	cmd.Flags().StringVar(&input, "input", "", "the input, as JSON")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the instance to end, and print its output")
	return cmd
}

// printEnded prints the status of an instance a wait saw end, and fails
// with exitInstanceFailed unless it completed.
func printEnded(out io.Writer, g *globals, st *httpapi.StatusPayload) error {
	if err := printStatus(out, g, st); err != nil {
		return err
	}
	if st.RuntimeStatus != "Completed" {
		return &exitError{exitInstanceFailed, fmt.Errorf("instance %s is %s", st.InstanceID, st.RuntimeStatus)}
	}
	return nil
}

func getStatus(ctx context.Context, api *api, id string, history bool) (*httpapi.StatusPayload, error) {
	q := url.Values{}
	if history {
		q.Set("showHistory", "true")
		q.Set("showHistoryOutput", "true")
	}
	resp, err := api.do(ctx, request{method: http.MethodGet, path: "/instances/" + url.PathEscape(id), query: q})
	if err != nil {
		return nil, err
	}
	var st httpapi.StatusPayload
	return &st, decodeJSON(resp.body, &st)
}

func printStatus(out io.Writer, g *globals, st *httpapi.StatusPayload) error {
	if g.json() {
		return printJSON(out, st)
	}
	rows := [][]string{
		{"instance", st.InstanceID}, {"name", st.Name}, {"status", st.RuntimeStatus},
		{"created", st.CreatedTime}, {"updated", st.LastUpdatedTime},
	}
	if st.CompletedTime != "" {
		rows = append(rows, []string{"completed", st.CompletedTime})
	}
	rows = append(rows, []string{"waits for", st.WaitsFor}, []string{"input", short(st.Input, 200)},
		[]string{"custom status", short(st.CustomStatus, 200)}, []string{"output", short(st.Output, 200)})
	for _, r := range rows {
		fmt.Fprintf(out, "%-14s %s\n", r[0]+":", r[1])
	}
	return nil
}

func statusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show an instance's status",
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			st, err := getStatus(cmd.Context(), api, a[0], false)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), g, st)
		},
	}
}

func waitCommand(g *globals) *cobra.Command {
	var timeout, interval time.Duration
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for an instance to end and show its status (exit 8 unless it completed)",
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for {
				st, err := getStatus(ctx, api, a[0], false)
				if err != nil {
					return err
				}
				if ended(st.RuntimeStatus) {
					return printEnded(cmd.OutOrStdout(), g, st)
				}
				select {
				case <-time.After(interval):
				case <-ctx.Done():
					return &exitError{exitFailed, fmt.Errorf("instance %s is still %s after %s", a[0], st.RuntimeStatus, timeout)}
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to ask")
	return cmd
}

func listCommand(g *globals) *cobra.Command {
	var statuses []string
	var name, prefix, from, to, custom string
	var top int
	var all, watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List instances, newest last",
		Args:  args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"name": name, "instanceIdPrefix": prefix, "createdTimeFrom": from, "createdTimeTo": to, "customStatus": custom} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if len(statuses) > 0 {
				q.Set("runtimeStatus", strings.Join(statuses, ","))
			}
			q.Set("top", strconv.Itoa(top))
			list := func() ([]httpapi.StatusPayload, error) {
				var out []httpapi.StatusPayload
				token := ""
				for {
					r := request{method: http.MethodGet, path: "/instances", query: q, header: http.Header{}}
					if token != "" {
						r.header.Set("x-ms-continuation-token", token)
					}
					resp, err := api.do(cmd.Context(), r)
					if err != nil {
						return nil, err
					}
					var page []httpapi.StatusPayload
					if err := decodeJSON(resp.body, &page); err != nil {
						return nil, err
					}
					out = append(out, page...)
					if token = resp.header.Get("x-ms-continuation-token"); token == "" || !all {
						return out, nil
					}
				}
			}
			show := func(items []httpapi.StatusPayload) error {
				if g.json() {
					return printJSON(cmd.OutOrStdout(), items)
				}
				rows := make([][]string, 0, len(items))
				for _, st := range items {
					rows = append(rows, []string{st.InstanceID, st.Name, st.RuntimeStatus, st.CreatedTime, st.LastUpdatedTime, short(st.CustomStatus, 40)})
				}
				return table(cmd.OutOrStdout(), []string{"INSTANCE", "NAME", "STATUS", "CREATED", "UPDATED", "CUSTOM STATUS"}, rows)
			}
			items, err := list()
			if err != nil {
				return err
			}
			if err := show(items); err != nil || !watch {
				return err
			}
			// Follow: print again whenever the page changes, until
			// interrupted.
			for {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
				next, err := list()
				if err != nil {
					return err
				}
				if !slices.EqualFunc(items, next, func(a, b httpapi.StatusPayload) bool {
					return a.InstanceID == b.InstanceID && a.RuntimeStatus == b.RuntimeStatus && a.LastUpdatedTime == b.LastUpdatedTime &&
						string(a.CustomStatus) == string(b.CustomStatus)
				}) {
					if !g.json() {
						fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", time.Now().Format(time.TimeOnly))
					}
					if err := show(next); err != nil {
						return err
					}
					items = next
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&statuses, "status", nil, "runtime statuses (Running, Completed, Failed, Terminated, Pending, Suspended, ...)")
	f.StringVar(&name, "name", "", "the orchestrator's name")
	f.StringVar(&prefix, "prefix", "", "an instance-ID prefix")
	f.StringVar(&from, "from", "", "created at or after (RFC 3339 time or date)")
	f.StringVar(&to, "to", "", "created before (RFC 3339 time or date)")
	f.StringVar(&custom, "custom-status", "", "text the custom status contains")
	f.IntVar(&top, "top", 100, "the page size")
	f.BoolVar(&all, "all", false, "follow continuation tokens to the last page")
	f.BoolVarP(&watch, "watch", "w", false, "print the list again whenever it changes, until interrupted")
	f.DurationVar(&interval, "interval", 2*time.Second, "how often --watch asks")
	return cmd
}

func historyCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history ID",
		Short: "Show an instance's history as a timeline",
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			st, err := getStatus(cmd.Context(), api, a[0], true)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), st.HistoryEvents)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s) is %s\n", st.InstanceID, st.Name, st.RuntimeStatus)
			return timeline(cmd.OutOrStdout(), st.HistoryEvents)
		},
	}
}

// timeline prints shaped history events, one line each: when, what, and
// the details that matter for it.
func timeline(out io.Writer, events []map[string]any) error {
	var first time.Time
	rows := make([][]string, 0, len(events))
	for _, ev := range events {
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["Timestamp"]))
		if first.IsZero() {
			first = at
		}
		var details []string
		for _, k := range []string{"FunctionName", "Name", "InstanceId", "OrchestrationStatus", "FireAt", "Input", "Result"} {
			if v, ok := ev[k]; ok {
				details = append(details, k+"="+short([]byte(compact(v)), 60))
			}
		}
		if f, ok := ev["FailureDetails"].(map[string]any); ok {
			details = append(details, fmt.Sprintf("failure=%v: %v", f["errorType"], f["errorMessage"]))
		}
		rows = append(rows, []string{at.Format("15:04:05.000"), "+" + at.Sub(first).Round(time.Millisecond).String(), fmt.Sprint(ev["EventType"]), strings.Join(details, " ")})
	}
	return table(out, []string{"TIME", "SINCE START", "EVENT", "DETAILS"}, rows)
}

func raiseCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "raise ID EVENT [PAYLOAD]",
		Short: "Raise an event to an instance (the payload is JSON)",
		Args:  args(2, 3),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			body := []byte("null")
			if len(a) == 3 {
				if body, err = jsonArg("payload", a[2]); err != nil {
					return err
				}
			}
			_, err = api.do(cmd.Context(), request{method: http.MethodPost, path: "/instances/" + url.PathEscape(a[0]) + "/raiseEvent/" + url.PathEscape(a[1]), body: body})
			return err
		},
	}
}

func controlCommand(g *globals, op, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   op + " ID",
		Short: short,
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			q := url.Values{}
			if reason != "" {
				q.Set("reason", reason)
			}
			_, err = api.do(cmd.Context(), request{method: http.MethodPost, path: "/instances/" + url.PathEscape(a[0]) + "/" + op, query: q})
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the request")
	return cmd
}

func restartCommand(g *globals) *cobra.Command {
	var newID bool
	cmd := &cobra.Command{
		Use:   "restart ID",
		Short: "Start an instance's orchestration again with the same input",
		Args:  args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			q := url.Values{"restartWithNewInstanceId": {strconv.FormatBool(newID)}}
			resp, err := api.do(cmd.Context(), request{method: http.MethodPost, path: "/instances/" + url.PathEscape(a[0]) + "/restart", query: q})
			if err != nil {
				return err
			}
			var cs httpapi.CheckStatusPayload
			if err := decodeJSON(resp.body, &cs); err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), cs)
			}
			fmt.Fprintln(cmd.OutOrStdout(), cs.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&newID, "new-id", false, "start under a new instance ID (the old instance stays)")
	return cmd
}

func purgeCommand(g *globals) *cobra.Command {
	var from, to string
	var statuses []string
	cmd := &cobra.Command{
		Use:   "purge [ID] | purge --from TIME [--to TIME] [--status ...]",
		Short: "Delete the history of an ended instance, or of every ended instance created in a time range",
		Args:  args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			r := request{method: http.MethodDelete}
			switch {
			case len(a) == 1 && from == "" && to == "" && len(statuses) == 0:
				r.path = "/instances/" + url.PathEscape(a[0])
			case len(a) == 0 && from != "":
				r.path, r.query = "/instances", url.Values{"createdTimeFrom": {from}}
				if to != "" {
					r.query.Set("createdTimeTo", to)
				}
				if len(statuses) > 0 {
					r.query.Set("runtimeStatus", strings.Join(statuses, ","))
				}
			default:
				return fmt.Errorf("%w: purge takes an instance ID, or --from (and --to, --status) without one", errUsage)
			}
			resp, err := api.do(cmd.Context(), r)
			if err != nil {
				return err
			}
			var res struct {
				InstancesDeleted int `json:"instancesDeleted"`
			}
			if err := decodeJSON(resp.body, &res); err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "purged %d\n", res.InstancesDeleted)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "purge the ended instances created at or after this time")
	cmd.Flags().StringVar(&to, "to", "", "and before this time (now by default)")
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "only these statuses (Completed, Failed, Terminated by default)")
	return cmd
}
