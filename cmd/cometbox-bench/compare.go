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
	groups := fs.Bool("groups", false, "results of group mode (-groups): the group table, and the Redis commands per copy of each label's first phase")
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
	if *groups {
		fmt.Fprintf(&b, "Medians of runs; group mode, %s.\n\n", results[0].Date)
		c.WriteGroups(&b)
		if len(c.Summaries) > 0 && len(c.Summaries[0].PhaseOrder) > 0 {
			first := c.Summaries[0].PhaseOrder[0]
			fmt.Fprintf(&b, "\nRedis commands per delivered copy in phase %s, by command:\n\n", first)
			c.WriteRedis(&b, first)
		}
		return writeOut(stdout, *md, b.Bytes())
	}
	if c.Cometbox != nil {
		fmt.Fprintf(&b, "Medians of runs; measured at commit %s, %s.\n\n", c.Cometbox.Commit, c.Cometbox.Date)
	}
	c.WriteMarkdown(&b)
	b.WriteString("\nPer phase (medians of runs):\n\n")
	c.WriteSweep(&b)
	b.WriteString("\nRedis commands per delivered message at 2,000 msg/s, by command (INFO commandstats; in Redis 7 commands run inside Lua scripts count too):\n\n")
	c.WriteRedis(&b, "r2000")
	if err := writeOut(stdout, *md, b.Bytes()); err != nil {
		return err
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

// writeOut writes the tables to stdout and, when md is set, to that file.
func writeOut(stdout io.Writer, md string, b []byte) error {
	if _, err := stdout.Write(b); err != nil {
		return err
	}
	if md != "" {
		return os.WriteFile(md, b, 0o644)
	}
	return nil
}
