package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// LoadResults reads result JSON files written by "run -json".
func LoadResults(paths []string) ([]*Result, error) {
	var out []*Result
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// Summary is the median over the runs of one label.
type Summary struct {
	Label  string
	Target string
	Runs   int
	// PerHeldPss and PerHeldRSS in bytes.
	PerHeldPss, PerHeldRSS float64
	Phases                 map[string]PhaseSummary
	PhaseOrder             []string
	// Sums over runs: any non-zero is a failure of the run.
	Errors, Lost, Dups uint64
	Gone               int
	GeneratorCPU       float64 // median per run
	Connected          float64 // median
	Subscribers        int
	Commit, Date       string
}

// PhaseSummary holds medians over runs of one phase.
type PhaseSummary struct {
	Rate, Batch                       float64
	PublishedPerSec, DeliveredPerSec  float64
	P50, P90, P99, Max                float64
	ServerCPUPer1k, GeneratorCPUPer1k float64
	RedisPerDelivered                 float64
	OtherCPUPct                       float64            // other programs' CPU, % of one core
	RedisCalls                        map[string]float64 // per delivered message, medians
	// LastP99 and LastMax, in group mode: the latency of each group
	// message's last member's copy (NaN otherwise).
	LastP99, LastMax float64
	// RequestsPerSec: publish requests (group messages) per second.
	RequestsPerSec float64
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Summarize groups results by label (in first-seen order) and takes
// medians.
func Summarize(results []*Result) []*Summary {
	var order []string
	by := map[string][]*Result{}
	for _, r := range results {
		if _, ok := by[r.Label]; !ok {
			order = append(order, r.Label)
		}
		by[r.Label] = append(by[r.Label], r)
	}
	var out []*Summary
	for _, label := range order {
		rs := by[label]
		s := &Summary{Label: label, Target: rs[0].Target, Runs: len(rs), Phases: map[string]PhaseSummary{},
			Commit: rs[0].Commit, Date: rs[0].Date, Subscribers: rs[0].Config.Subscribers}
		var pss, rss, gen, conn []float64
		for _, r := range rs {
			if r.Memory != nil {
				pss = append(pss, r.Memory.PerHeldPss)
				rss = append(rss, r.Memory.PerHeldRSS)
			}
			gen = append(gen, r.GeneratorCPU)
			conn = append(conn, float64(r.Connect.Connected))
			s.Errors += r.Errors
			s.Lost += r.Final.Lost
			s.Dups += r.Final.Dups
			s.Gone += len(r.Gone)
		}
		s.PerHeldPss, s.PerHeldRSS, s.GeneratorCPU, s.Connected = median(pss), median(rss), median(gen), median(conn)
		for _, p := range rs[0].Phases {
			s.PhaseOrder = append(s.PhaseOrder, p.Name)
			var col [15][]float64
			calls := map[string][]float64{}
			for _, r := range rs {
				for _, q := range r.Phases {
					if q.Name != p.Name {
						continue
					}
					delivered := q.DeliveredPerSec * q.Duration.Seconds()
					for i, v := range []float64{q.Rate, float64(q.Batch), q.PublishedPerSec, q.DeliveredPerSec,
						q.Latency.P50, q.Latency.P90, q.Latency.P99, q.Latency.Max,
						q.ServerCPUPer1k, q.GeneratorCPUPer1k, q.RedisPerDelivered, 100 * q.OtherCPU / q.Duration.Seconds()} {
						col[i] = append(col[i], v)
					}
					for k, v := range q.RedisCalls {
						calls[k] = append(calls[k], float64(v)/max(delivered, 1))
					}
					if l := q.LastCopy; l != nil {
						col[12] = append(col[12], l.P99)
						col[13] = append(col[13], l.Max)
					}
					col[14] = append(col[14], q.RequestsPerSec)
				}
			}
			ps := PhaseSummary{
				Rate: median(col[0]), Batch: median(col[1]), PublishedPerSec: median(col[2]), DeliveredPerSec: median(col[3]),
				P50: median(col[4]), P90: median(col[5]), P99: median(col[6]), Max: median(col[7]),
				ServerCPUPer1k: median(col[8]), GeneratorCPUPer1k: median(col[9]), RedisPerDelivered: median(col[10]),
				OtherCPUPct: median(col[11]),
				RedisCalls:  map[string]float64{},
				LastP99:     median(col[12]), LastMax: median(col[13]), RequestsPerSec: median(col[14]),
			}
			for k, v := range calls {
				for len(v) < len(rs) { // absent in a run: zero calls
					v = append(v, 0)
				}
				ps.RedisCalls[k] = median(v)
			}
			s.Phases[p.Name] = ps
		}
		out = append(out, s)
	}
	return out
}

// BestMax is the phase with the most delivered msg/s among those that
// publish one message per request (max1 with 16 publisher connections,
// max1p64 with 64, and the paced phases, which a saturated server turns
// into max-rate phases too), and its name: each server's best.
func (s *Summary) BestMax() (PhaseSummary, string) {
	var best PhaseSummary
	name := ""
	for _, n := range s.PhaseOrder {
		p := s.Phases[n]
		if p.Batch == 1 && (name == "" || p.DeliveredPerSec > best.DeliveredPerSec) {
			best, name = p, n
		}
	}
	return best, name
}

// Comparison picks cometbox and Nchan summaries and checks the targets.
type Comparison struct {
	Summaries []*Summary
	Cometbox  *Summary
	// NchanBest has the highest delivered msg/s at max rate; NchanLeanest
	// the least memory per held poll.
	NchanBest, NchanLeanest *Summary
}

// Compare finds the cometbox summary and Nchan's best among the rest.
func Compare(sums []*Summary) *Comparison {
	c := &Comparison{Summaries: sums}
	for _, s := range sums {
		switch s.Target {
		case "cometbox":
			if c.Cometbox == nil {
				c.Cometbox = s
			}
		case "nchan":
			sb, _ := s.BestMax()
			var nb PhaseSummary
			if c.NchanBest != nil {
				nb, _ = c.NchanBest.BestMax()
			}
			if c.NchanBest == nil || sb.DeliveredPerSec > nb.DeliveredPerSec {
				c.NchanBest = s
			}
			if c.NchanLeanest == nil || s.PerHeldPss < c.NchanLeanest.PerHeldPss {
				c.NchanLeanest = s
			}
		}
	}
	return c
}

type row struct {
	name   string
	unit   string
	get    func(*Summary) float64
	format string
	ratio  string // "" none; "cometbox/nchan"
	vs     func(*Comparison) *Summary
	target string
	met    func(cb, nc float64) bool
}

func (c *Comparison) rows() []row {
	best := func(c *Comparison) *Summary { return c.NchanBest }
	lean := func(c *Comparison) *Summary { return c.NchanLeanest }
	ph := func(name string, f func(PhaseSummary) float64) func(*Summary) float64 {
		return func(s *Summary) float64 {
			p, ok := s.Phases[name]
			if !ok {
				return math.NaN()
			}
			return f(p)
		}
	}
	maxph := func(f func(PhaseSummary) float64) func(*Summary) float64 {
		return func(s *Summary) float64 {
			p, name := s.BestMax()
			if name == "" {
				return math.NaN()
			}
			return f(p)
		}
	}
	return []row{
		{name: "memory per held idle poll, node/nginx + Redis (Pss)", unit: "kB", format: "%.1f",
			get: func(s *Summary) float64 { return s.PerHeldPss / 1000 }, ratio: "x", vs: lean,
			target: "<= 0.65x", met: func(cb, nc float64) bool { return cb <= 0.65*nc }},
		{name: "memory per held idle poll (RSS)", unit: "kB", format: "%.1f",
			get: func(s *Summary) float64 { return s.PerHeldRSS / 1000 }, ratio: "x", vs: lean},
		{name: "delivered msg/s at max rate, 1 msg/request (best phase)", unit: "msg/s", format: "%.0f",
			get: maxph(func(p PhaseSummary) float64 { return p.DeliveredPerSec }), ratio: "x", vs: best,
			target: ">= 1.5x", met: func(cb, nc float64) bool { return cb >= 1.5*nc }},
		{name: "server CPU s per 1,000 msgs in that phase", unit: "s", format: "%.3f",
			get: maxph(func(p PhaseSummary) float64 { return p.ServerCPUPer1k }), ratio: "x", vs: best},
		{name: "server CPU s per 1,000 msgs at 2,000 msg/s", unit: "s", format: "%.3f",
			get: ph("r2000", func(p PhaseSummary) float64 { return p.ServerCPUPer1k }), ratio: "x", vs: best,
			target: "<= 0.7x", met: func(cb, nc float64) bool { return cb <= 0.7*nc }},
		{name: "server CPU s per 1,000 msgs at 4,000 msg/s", unit: "s", format: "%.3f",
			get: ph("r4000", func(p PhaseSummary) float64 { return p.ServerCPUPer1k }), ratio: "x", vs: best,
			target: "<= 0.7x", met: func(cb, nc float64) bool { return cb <= 0.7*nc }},
		{name: "delivered msg/s, batches of 100 per request", unit: "msg/s", format: "%.0f",
			get:    ph("batch100", func(p PhaseSummary) float64 { return p.DeliveredPerSec }),
			target: ">= 30,000", met: func(cb, _ float64) bool { return cb >= 30000 }},
		{name: "p50 latency at 2,000 msg/s", unit: "ms", format: "%.2f",
			get: ph("r2000", func(p PhaseSummary) float64 { return p.P50 }), ratio: "x", vs: best,
			target: "<= 1 ms", met: func(cb, _ float64) bool { return cb <= 1 }},
		{name: "p90 latency at 2,000 msg/s", unit: "ms", format: "%.2f",
			get: ph("r2000", func(p PhaseSummary) float64 { return p.P90 }), ratio: "x", vs: best},
		{name: "p99 latency at 2,000 msg/s", unit: "ms", format: "%.2f",
			get: ph("r2000", func(p PhaseSummary) float64 { return p.P99 }), ratio: "x", vs: best,
			target: "<= 1x", met: func(cb, nc float64) bool { return cb <= nc }},
		{name: "Redis commands per delivered msg at 2,000 msg/s", unit: "", format: "%.2f",
			get: ph("r2000", func(p PhaseSummary) float64 { return p.RedisPerDelivered }), ratio: "x", vs: best},
		{name: "Redis commands per delivered msg in that phase", unit: "", format: "%.2f",
			get: maxph(func(p PhaseSummary) float64 { return p.RedisPerDelivered }), ratio: "x", vs: best},
		{name: "generator CPU s per 1,000 msgs in that phase", unit: "s", format: "%.3f",
			get: maxph(func(p PhaseSummary) float64 { return p.GeneratorCPUPer1k })},
	}
}

func fmtVal(format string, v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// WriteMarkdown writes the comparison as a Markdown table: one column per
// label, the ratio of cometbox to the Nchan run named in the row, and the
// target with met/missed.
func (c *Comparison) WriteMarkdown(w io.Writer) {
	var hdr, sep []string
	hdr = append(hdr, "metric")
	sep = append(sep, "---")
	for _, s := range c.Summaries {
		hdr = append(hdr, fmt.Sprintf("%s (%d runs)", s.Label, s.Runs))
		sep = append(sep, "---:")
	}
	hdr = append(hdr, "cometbox / Nchan", "target", "met?")
	sep = append(sep, "---:", "---", "---")
	fmt.Fprintf(w, "| %s |\n| %s |\n", strings.Join(hdr, " | "), strings.Join(sep, " | "))
	for _, r := range c.rows() {
		name := r.name
		if r.unit != "" {
			name += " (" + r.unit + ")"
		}
		cells := []string{name}
		for _, s := range c.Summaries {
			cells = append(cells, fmtVal(r.format, r.get(s)))
		}
		ratio, met := "", ""
		var cb, nc = math.NaN(), math.NaN()
		if c.Cometbox != nil {
			cb = r.get(c.Cometbox)
		}
		var vs *Summary
		if r.vs != nil {
			vs = r.vs(c)
		}
		if vs != nil {
			nc = r.get(vs)
		}
		if r.ratio != "" && vs != nil && !math.IsNaN(cb) && !math.IsNaN(nc) && nc != 0 {
			ratio = fmt.Sprintf("%.2fx (vs %s)", cb/nc, vs.Label)
		}
		if r.met != nil && !math.IsNaN(cb) && (r.vs == nil || !math.IsNaN(nc)) {
			if r.met(cb, nc) {
				met = "met"
			} else {
				met = "**missed**"
			}
		}
		cells = append(cells, ratio, r.target, met)
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	// failures
	cells := []string{"errors / lost / duplicated (sum over runs)"}
	for _, s := range c.Summaries {
		cells = append(cells, fmt.Sprintf("%d / %d / %d", s.Errors, s.Lost, s.Dups))
	}
	cells = append(cells, "", "0 / 0 / 0", "")
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

// WriteSweep writes, per label, the rate sweep as a Markdown table.
func (c *Comparison) WriteSweep(w io.Writer) {
	fmt.Fprintln(w, "| run | phase | target msg/s | published msg/s | delivered msg/s | p50 ms | p90 ms | p99 ms | max ms | server CPU s/1k | generator CPU s/1k | Redis cmds/msg | other programs' CPU % |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range c.Summaries {
		for _, name := range s.PhaseOrder {
			p := s.Phases[name]
			rate := "max"
			if p.Rate > 0 {
				rate = fmt.Sprintf("%.0f", p.Rate)
			}
			if p.Batch > 1 {
				rate += fmt.Sprintf(" (x%.0f)", p.Batch)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.1f | %.3f | %.3f | %.2f | %.0f |\n",
				s.Label, name, rate, p.PublishedPerSec, p.DeliveredPerSec, p.P50, p.P90, p.P99, p.Max,
				p.ServerCPUPer1k, p.GeneratorCPUPer1k, p.RedisPerDelivered, p.OtherCPUPct)
		}
	}
}

// WriteGroups writes group mode's table: for every label and phase the
// group messages offered and published per second, the copies delivered
// per second, the latency of every member's copy and of each group
// message's last one, the servers' CPU and Redis commands per copy, and
// the losses of the label's runs.
func (c *Comparison) WriteGroups(w io.Writer) {
	fmt.Fprintln(w, "| run | phase | group msg/s offered | group msg/s published | copies delivered/s | p50 ms | p99 ms | max ms | last copy p99 ms | last copy max ms | server CPU s/1k copies | Redis cmds/copy | other programs' CPU % |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range c.Summaries {
		for _, name := range s.PhaseOrder {
			p := s.Phases[name]
			rate := "max"
			if p.Rate > 0 {
				rate = fmt.Sprintf("%.0f", p.Rate)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.3f | %.2f | %.0f |\n",
				s.Label, name, rate, p.RequestsPerSec, p.DeliveredPerSec, p.P50, p.P99, p.Max, p.LastP99, p.LastMax,
				p.ServerCPUPer1k, p.RedisPerDelivered, p.OtherCPUPct)
		}
	}
	fmt.Fprintln(w)
	for _, s := range c.Summaries {
		fmt.Fprintf(w, "- **%s** (%d runs): errors %d, lost %d, duplicated %d\n", s.Label, s.Runs, s.Errors, s.Lost, s.Dups)
	}
}

// WriteRedis writes the Redis commands per delivered message by command.
func (c *Comparison) WriteRedis(w io.Writer, phase string) {
	for _, s := range c.Summaries {
		p, ok := s.Phases[phase]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "- **%s** (%s, %.2f in all): %s\n", s.Label, phase, p.RedisPerDelivered, rankCalls(p.RedisCalls, 12, "`%s` %.2f", 0.005))
	}
}

// WriteSVG draws p50 and p99 latency (log scale) against the offered
// publish rate of every label's paced one-message-per-request phases. A
// hollow point marks a rate the server did not sustain (delivered less
// than 95 % of it): there the latency is that of a saturated server.
func (c *Comparison) WriteSVG(w io.Writer) {
	const (
		W, H                 = 820, 500
		left, right, top, bt = 70, 200, 40, 60
	)
	pw, phh := float64(W-left-right), float64(H-top-bt)
	type pt struct {
		x, p50, p99 float64
		saturated   bool
	}
	series := map[string][]pt{}
	xmax := 1000.0
	ymin, ymax := 0.1, 100.0
	subs := 0
	for _, s := range c.Summaries {
		subs = max(subs, s.Subscribers)
		for _, name := range s.PhaseOrder {
			p := s.Phases[name]
			if p.Batch != 1 || p.Rate <= 0 || p.DeliveredPerSec <= 0 {
				continue
			}
			series[s.Label] = append(series[s.Label], pt{p.Rate, p.P50, p.P99, p.DeliveredPerSec < 0.95*p.Rate})
			xmax = max(xmax, p.Rate)
			ymax = max(ymax, p.P99)
			if p.P50 > 0 {
				ymin = min(ymin, p.P50)
			}
		}
		sort.Slice(series[s.Label], func(i, j int) bool { return series[s.Label][i].x < series[s.Label][j].x })
	}
	xmax = math.Ceil(xmax/1000) * 1000
	lo, hi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	X := func(v float64) float64 { return left + v/xmax*pw }
	Y := func(v float64) float64 {
		v = max(v, math.Pow(10, lo))
		return top + phh - (math.Log10(v)-lo)/(hi-lo)*phh
	}
	colors := []string{"#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(w, `<text x="%d" y="22" font-size="15" font-weight="bold">Publish-to-delivery latency against publish rate (%s held long-polls, 64-byte messages)</text>`+"\n", left-50, thousands(subs))
	for e := lo; e <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v > math.Pow(10, hi) {
				break
			}
			y := Y(v)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, y, left+pw, y, stroke)
			fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, trimFloat(v))
		}
	}
	for v := 0.0; v <= xmax; v += 1000 {
		x := X(v)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x, top, x, top+phh)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, top+phh+18, thousands(int(v)))
	}
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, phh)
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">offered publish rate, messages per second (one per request); medians of runs</text>`+"\n", left+pw/2, H-30)
	fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">hollow point: the server delivered less than 95 %% of the offered rate (saturated)</text>`+"\n", left+pw/2, H-12)
	fmt.Fprintf(w, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">latency, ms (log scale)</text>`+"\n", top+phh/2, top+phh/2)
	ly := top + 10
	for i, s := range c.Summaries {
		pts := series[s.Label]
		if len(pts) == 0 {
			continue
		}
		col := colors[i%len(colors)]
		for _, q := range []struct {
			name, dash string
			get        func(pt) float64
		}{{"p99", "", func(p pt) float64 { return p.p99 }}, {"p50", "6,4", func(p pt) float64 { return p.p50 }}} {
			var d []string
			for _, p := range pts {
				d = append(d, fmt.Sprintf("%.1f,%.1f", X(p.x), Y(q.get(p))))
			}
			fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", strings.Join(d, " "), col, q.dash)
			for _, p := range pts {
				fill := col
				if p.saturated {
					fill = "white"
				}
				fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n", X(p.x), Y(q.get(p)), fill, col)
			}
			fmt.Fprintf(w, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n",
				left+pw+15, ly, left+pw+45, ly, col, q.dash)
			fmt.Fprintf(w, `<text x="%.0f" y="%d">%s %s</text>`+"\n", left+pw+50, ly+4, s.Label, q.name)
			ly += 20
		}
	}
	fmt.Fprintln(w, "</svg>")
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
