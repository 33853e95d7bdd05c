package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cometbox/cometbox/internal/bench"
)

// compareCmd reads result files, groups them by label, takes the median
// of each metric over a label's runs, and prints the comparison table
// (cometbox against the best Nchan run), the rate sweep and the Redis
// commands; -svg draws the latency chart.
func compareCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	md := fs.String("md", "", "also write the Markdown tables to this file")
	svg := fs.String("svg", "", "write the latency-against-rate chart (SVG) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("compare: give result files (written by run -json)")
	}
	results, err := bench.LoadResults(fs.Args())
	if err != nil {
		return err
	}
	c := bench.Compare(bench.Summarize(results))
	var b bytes.Buffer
	if c.Cometbox != nil {
		fmt.Fprintf(&b, "Medians of runs; measured at commit %s, %s.\n\n", c.Cometbox.Commit, c.Cometbox.Date)
	}
	c.WriteMarkdown(&b)
	b.WriteString("\nPer phase (medians of runs):\n\n")
	c.WriteSweep(&b)
	b.WriteString("\nRedis commands per delivered message at 2,000 msg/s, by command (INFO commandstats; in Redis 7 commands run inside Lua scripts count too):\n\n")
	c.WriteRedis(&b, "r2000")
	if _, err := stdout.Write(b.Bytes()); err != nil {
		return err
	}
	if *md != "" {
		if err := os.WriteFile(*md, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if *svg != "" {
		var s bytes.Buffer
		c.WriteSVG(&s)
		if err := os.WriteFile(*svg, s.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
