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
// place on a terminal, plain lines otherwise (logs, CI). Nothing is printed
// for an operation that ends within progressDelay, so quick commands and
// their one-line errors stay clean; --quiet turns it off.
var (
	progressDelay = time.Second     // silence before the first report
	plainInterval = 5 * time.Second // between plain lines
	barInterval   = 100 * time.Millisecond
)

type progress struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	unit    string // "B" for bytes, "" for counts
	total   int64  // -1 if unknown
	n       int64
	tty     bool
	start   time.Time
	last    time.Time
	printed bool
	off     bool
}

// newProgress reports on w about an operation of total units (-1 when
// unknown). unit is "B" for byte counts, or a noun ("blobs").
func newProgress(w io.Writer, label, unit string, total int64, quiet bool) *progress {
	now := time.Now()
	return &progress{w: w, label: label, unit: unit, total: total, tty: isTerminal(w), start: now, off: quiet}
}

// isTerminal reports whether w is a terminal. Being a character device is
// not enough: /dev/null is one too.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// add counts n more units done.
func (p *progress) add(n int64) { p.set(-1, n) }

// set sets the count done (abs >= 0) or adds delta.
func (p *progress) set(abs, delta int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if abs >= 0 {
		p.n = abs
	} else {
		p.n += delta
	}
	if p.off {
		return
	}
	now := time.Now()
	if now.Sub(p.start) < progressDelay {
		return
	}
	interval := plainInterval
	if p.tty {
		interval = barInterval
	}
	if p.printed && now.Sub(p.last) < interval {
		return
	}
	p.draw(now, false)
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
	p.draw(time.Now(), true)
}

func (p *progress) draw(now time.Time, final bool) {
	p.printed = true
	p.last = now
	elapsed := now.Sub(p.start).Round(100 * time.Millisecond)
	count := p.format(p.n)
	if p.total >= 0 {
		count += " / " + p.format(p.total)
	}
	rate := ""
	if p.unit == "B" && elapsed > 0 {
		rate = fmt.Sprintf(", %s/s", humanBytes(int64(float64(p.n)/elapsed.Seconds())))
	}
	if !p.tty {
		state := ""
		if final {
			state = " done"
		}
		fmt.Fprintf(p.w, "geoseal: %s%s: %s (%s%s)\n", p.label, state, count, elapsed, rate)
		return
	}
	bar := ""
	if p.total > 0 {
		const width = 30
		filled := min(int(p.n*width/p.total), width)
		bar = fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.n*100/p.total)
	}
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprintf(p.w, "\r%s %s%s (%s%s)\x1b[K%s", p.label, bar, count, elapsed, rate, end)
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
