package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

func entityPath(name, key string) string {
	return "/entities/" + url.PathEscape(name) + "/" + url.PathEscape(key)
}

func signalCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "signal NAME KEY OPERATION [INPUT]",
		Short: "Signal an entity: run an operation on it, one way (the input is JSON)",
		Args:  args(3, 4),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			r := request{method: http.MethodPost, path: entityPath(a[0], a[1]), query: url.Values{"op": {a[2]}}, body: []byte("null")}
			if len(a) == 4 {
				if r.body, err = jsonArg("input", a[3]); err != nil {
					return err
				}
			}
			_, err = api.do(cmd.Context(), r)
			return err
		},
	}
}

func entityCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "entity", Short: "Read, list and delete entities"}
	cmd.AddCommand(&cobra.Command{
		Use:   "get NAME KEY",
		Short: "Show an entity's state",
		Args:  args(2, 2),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			resp, err := api.do(cmd.Context(), request{method: http.MethodGet, path: entityPath(a[0], a[1])})
			if err != nil {
				return err
			}
			var state any
			if err := decodeJSON(resp.body, &state); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), state)
		},
	}, &cobra.Command{
		Use:   "delete NAME KEY",
		Short: "Signal an entity's delete operation",
		Args:  args(2, 2),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			_, err = api.do(cmd.Context(), request{method: http.MethodDelete, path: entityPath(a[0], a[1])})
			return err
		},
	})
	var state bool
	var top int
	list := &cobra.Command{
		Use:   "list [NAME]",
		Short: "List entities (of one kind)",
		Args:  args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			api, err := g.api()
			if err != nil {
				return err
			}
			path := "/entities"
			if len(a) == 1 {
				path += "/" + url.PathEscape(a[0])
			}
			q := url.Values{"fetchState": {strconv.FormatBool(state)}, "top": {strconv.Itoa(top)}}
			resp, err := api.do(cmd.Context(), request{method: http.MethodGet, path: path, query: q})
			if err != nil {
				return err
			}
			var items []struct {
				EntityID struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				} `json:"entityId"`
				LastOperationTime string          `json:"lastOperationTime"`
				State             json.RawMessage `json:"state,omitempty"`
				LockedBy          string          `json:"lockedBy,omitempty"`
			}
			if err := decodeJSON(resp.body, &items); err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), items)
			}
			rows := make([][]string, 0, len(items))
			for _, e := range items {
				locked := e.LockedBy
				if locked == "" {
					locked = "-"
				}
				rows = append(rows, []string{e.EntityID.Name, e.EntityID.Key, e.LastOperationTime, locked, short(e.State, 60)})
			}
			if len(rows) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no entities")
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "KEY", "LAST OPERATION", "LOCKED BY", "STATE"}, rows)
		},
	}
	list.Flags().BoolVar(&state, "state", false, "show each entity's state")
	list.Flags().IntVar(&top, "top", 100, "how many")
	cmd.AddCommand(list)
	return cmd
}
