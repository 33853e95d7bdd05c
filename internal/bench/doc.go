// Package bench is the engine of cmd/cometbox-bench, the load tool of
// docs/performance.md: a generator that holds many long-polls over a
// hand-written HTTP/1.1 client and publishes at a paced or maximum rate
// (Runner), adapters for cometbox's and Nchan's protocols (Target), exact
// loss and duplicate accounting (Tracker), an HDR-like latency histogram,
// readings of the servers' memory, CPU and Redis commands, an orchestrator
// that drives one or several generator processes in lock step (Run), the
// comparison table and chart (Compare), and the rolling-restart mode: the
// docker-compose topology as processes (Topology) whose nodes are
// restarted one at a time under load (Roll), each restart's window read
// from a Timeline of the run.
//
// It talks to loopback addresses only. A Runner and everything it starts
// stop by its MaxRun deadline or Close; its methods other than Live are
// called from one goroutine at a time.
package bench
