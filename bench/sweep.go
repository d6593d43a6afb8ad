package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// A sweep runs the selected scenarios once per value of one parameter,
// so the output is a curve instead of a point.
type sweep struct {
	param  string
	values []int
}

// sweepParams are the parameters a sweep may vary, and where they go.
var sweepParams = map[string]func(*config) *int{
	"inflight":  func(c *config) *int { return &c.inflight },
	"width":     func(c *config) *int { return &c.width },
	"events":    func(c *config) *int { return &c.events },
	"clients":   func(c *config) *int { return &c.clients },
	"instances": func(c *config) *int { return &c.instances },
	"entities":  func(c *config) *int { return &c.entities },
	"writers":   func(c *config) *int { return &c.writers },
}

// parseSweep reads "param=v1,v2,...".
func parseSweep(s string) (sweep, error) {
	param, list, ok := strings.Cut(s, "=")
	if _, known := sweepParams[param]; !ok || !known {
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range sweepParams {
				if !yield(k) {
					return
				}
			}
		})
		return sweep{}, fmt.Errorf("-sweep %q: want param=v1,v2,... with param one of %s", s, strings.Join(names, ", "))
	}
	sw := sweep{param: param}
	for _, v := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n <= 0 {
			return sweep{}, fmt.Errorf("-sweep %q: %q is not a positive whole number", s, v)
		}
		sw.values = append(sw.values, n)
	}
	return sw, nil
}

// set returns cfg with the swept parameter at v.
func (sw sweep) set(cfg config, v int) config {
	*sweepParams[sw.param](&cfg) = v
	return cfg
}

// throughputMetrics and latencyMetrics are what a curve plots, in order
// of preference.
var (
	throughputMetrics = []string{"orchestrations_per_sec", "activities_per_sec", "events_per_sec", "ops_per_sec"}
	latencyMetrics    = []string{"p50_ms", "p99_ms"}
)

// plotSweep draws, for each scenario of the results, its throughput and
// (when it has them) its latencies against the swept parameter, one panel
// each, stacked in one image: SVG or PNG by the file's extension.
func plotSweep(path string, sw sweep, results []result) error {
	var panels []*plot.Plot
	var names []string
	for _, r := range results {
		if !slices.Contains(names, r.Scenario) {
			names = append(names, r.Scenario)
		}
	}
	for _, name := range names {
		var rows []result
		for _, r := range results {
			if r.Scenario == name {
				rows = append(rows, r)
			}
		}
		for _, group := range [][]string{throughputMetrics[:1], latencyMetrics} {
			metrics := group
			if len(group) == 1 { // the first throughput metric the scenario has
				metrics = nil
				for _, m := range throughputMetrics {
					if _, ok := rows[0].Metrics[m]; ok {
						metrics = []string{m}
						break
					}
				}
			}
			p, err := curve(name, sw, rows, metrics)
			if err != nil {
				return err
			}
			if p != nil {
				panels = append(panels, p)
			}
		}
	}
	if len(panels) == 0 {
		return fmt.Errorf("-plot: the results have nothing to plot")
	}
	const w, h = 16 * vg.Centimeter, 9 * vg.Centimeter
	var canvas draw.Canvas
	var save func() error
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".svg":
		c := vgsvg.New(w, h*vg.Length(len(panels)))
		canvas, save = draw.New(c), func() error { return writeTo(path, c) }
	case ".png":
		c := vgimg.New(w, h*vg.Length(len(panels)))
		canvas, save = draw.New(c), func() error { return writeTo(path, vgimg.PngCanvas{Canvas: c}) }
	default:
		return fmt.Errorf("-plot %s: the file must end in .svg or .png", path)
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Centimeter / 2, PadTop: vg.Centimeter / 4, PadBottom: vg.Centimeter / 4,
		PadLeft: vg.Centimeter / 4, PadRight: vg.Centimeter / 2}
	for i, p := range panels {
		p.Draw(tiles.At(canvas, 0, i))
	}
	return save()
}

// curve is one panel: the metrics of rows against the swept parameter,
// on log axes when the values span more than a factor of ten; nil when the
// rows have none of the metrics.
func curve(scenario string, sw sweep, rows []result, metrics []string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = scenario
	p.X.Label.Text = sw.param
	var lines []any
	for _, m := range metrics {
		var pts plotter.XYs
		for _, r := range rows {
			v, ok := r.Metrics[m]
			x, known := r.Params[sw.param].(int)
			if ok && known {
				pts = append(pts, plotter.XY{X: float64(x), Y: v})
			}
		}
		if len(pts) > 0 {
			lines = append(lines, m, pts)
		}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, err
	}
	p.Y.Label.Text = strings.Join(metrics, ", ")
	if slices.Max(sw.values) > 10*slices.Min(sw.values) {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	p.Y.Min = 0
	if strings.HasSuffix(metrics[0], "_ms") && p.Y.Max > 10*yMin(lines) {
		// Latencies that grow by orders of magnitude read best on a log axis.
		p.Y.Min, p.Y.Scale, p.Y.Tick.Marker = yMin(lines), plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

// yMin is the smallest positive value of the lines (pairs of a name and
// its points), for a log axis.
func yMin(lines []any) float64 {
	m := math.Inf(1)
	for _, l := range lines {
		if pts, ok := l.(plotter.XYs); ok {
			for _, pt := range pts {
				if pt.Y > 0 {
					m = math.Min(m, pt.Y)
				}
			}
		}
	}
	return m
}

// writeTo writes an image to path.
func writeTo(path string, img interface {
	WriteTo(w io.Writer) (int64, error)
}) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
