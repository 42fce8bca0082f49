package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress reporting. Long operations report on stderr: a bar redrawn in
// place on a terminal (size, rate, ETA), plain lines otherwise (logs, CI).
// Nothing is printed for an operation that ends within the timing's delay,
// so quick commands and their one-line errors stay clean; --quiet turns it
// off.

// progressTiming paces the reports. It is part of the environment, so a
// test can make reports immediate and its clock its own.
type progressTiming struct {
	delay time.Duration // silence before the first report
	plain time.Duration // between plain lines
	bar   time.Duration // between redraws of the bar
	now   func() time.Time
}

var defaultProgressTiming = progressTiming{
	delay: time.Second,
	plain: 5 * time.Second,
	bar:   100 * time.Millisecond,
	now:   time.Now,
}

type progress struct {
	mu      sync.Mutex
	w       io.Writer
	timing  progressTiming
	label   string
	unit    string // "B" for bytes, a noun ("blobs") for counts
	total   int64  // -1 if unknown
	n       int64
	tty     bool
	width   int // the terminal's columns
	start   time.Time
	last    time.Time
	printed bool
	off     bool
}

// newProgress reports on stderr about an operation of total units (-1
// when unknown). unit is "B" for byte counts, or a noun ("blobs").
func (e *environment) newProgress(label, unit string, total int64) *progress {
	t := e.progress
	if t.now == nil {
		t = defaultProgressTiming
	}
	p := &progress{
		w: e.stderr, timing: t, label: label, unit: unit, total: total,
		tty: e.terminal != nil && e.terminal(e.stderr), width: 80, start: t.now(), off: e.common.quiet,
	}
	if f, ok := e.stderr.(*os.File); ok && p.tty {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			p.width = w
		}
	}
	return p
}

// walkProgress reports on the blobs of a container-wide command (audit,
// migrate, rewrap-all); with --json it reports nothing (nil), as the JSON
// lines report each blob.
func (e *environment) walkProgress(label string, total int64, asJSON bool) *progress {
	if asJSON {
		return nil
	}
	return e.newProgress(label, "blobs", total)
}

// add counts n more units done.
func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += n
	if p.off {
		return
	}
	now := p.timing.now()
	if now.Sub(p.start) < p.timing.delay {
		return
	}
	interval := p.timing.plain
	if p.tty {
		interval = p.timing.bar
	}
	if p.printed && now.Sub(p.last) < interval {
		return
	}
	p.draw(now, false)
}

// count returns the units counted so far.
func (p *progress) count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// done prints the final state if anything was printed before.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off || !p.printed {
		return
	}
	p.draw(p.timing.now(), true)
}

func (p *progress) draw(now time.Time, final bool) {
	p.printed = true
	p.last = now
	elapsed := now.Sub(p.start)
	count := p.format(p.n)
	if p.total >= 0 {
		count += " / " + p.format(p.total)
	}
	var stats []string
	if p.total > 0 {
		stats = append(stats, fmt.Sprintf("%d%%", min(p.n*100/p.total, 100)))
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(p.n) / s
	}
	if p.unit == "B" {
		stats = append(stats, humanBytes(int64(rate))+"/s")
	}
	switch {
	case final:
		stats = append(stats, "in "+formatDuration(elapsed))
	case p.total > p.n && rate > 0:
		stats = append(stats, "ETA "+formatDuration(time.Duration(float64(p.total-p.n)/rate*float64(time.Second))))
	default:
		stats = append(stats, formatDuration(elapsed))
	}
	if !p.tty {
		state := ""
		if final {
			state = " done"
		}
		fmt.Fprintf(p.w, "geoseal: %s%s: %s (%s)\n", p.label, state, count, strings.Join(stats, ", "))
		return
	}
	bar := ""
	if p.total > 0 {
		const width = 24
		filled := int(min(p.n*width/p.total, width))
		bar = "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] "
	}
	end := ""
	if final {
		end = "\n"
	}
	// The line must fit the terminal, or the next \r redraws only its
	// last row: the label gives way, keeping its end (the file name).
	rest := " " + bar + count + "  " + strings.Join(stats, "  ")
	if p.width-1-len(rest) < 20 { // the bar goes first
		rest = " " + count + "  " + strings.Join(stats, "  ")
	}
	label := []rune(p.label)
	if room := p.width - 1 - len([]rune(rest)); len(label) > room {
		label = append([]rune("..."), label[min(len(label), max(0, len(label)-room+3)):]...)
	}
	// \r returns to the start of the line, \x1b[K clears what a longer
	// previous draw left.
	fmt.Fprintf(p.w, "\r%s%s\x1b[K%s", string(label), rest, end)
}

func (p *progress) format(n int64) string {
	if p.unit == "B" {
		return humanBytes(n)
	}
	return fmt.Sprintf("%d %s", n, p.unit)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// formatDuration writes d as a clock, 0:07, 12:45 or 1:02:03, rounded to
// the second: what an ETA needs, not time.Duration's 12m45.123s.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// progressReader counts the bytes read through it.
type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(int64(n))
	return n, err
}
