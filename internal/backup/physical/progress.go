package physical

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// progressInterval is the shortest time between two progress reports within a phase.
const progressInterval = 250 * time.Millisecond

// reporter calls a Progress callback at phase changes and every progressInterval while
// bytes move, never two calls at once.
type reporter struct {
	fn    func(Progress)
	done  atomic.Int64
	total atomic.Int64

	mu    sync.Mutex // serialises calls of fn and guards phase
	phase string

	stop chan struct{}
	wg   sync.WaitGroup
}

func newReporter(fn func(Progress)) *reporter {
	r := &reporter{fn: fn, stop: make(chan struct{})}
	if fn != nil {
		r.wg.Add(1)
		go r.tick()
	}
	return r
}

// setPhase starts a phase of total bytes and reports it.
func (r *reporter) setPhase(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase = phase
	r.done.Store(0)
	r.total.Store(total)
	r.emitLocked()
}

// add counts n more bytes done in the current phase.
func (r *reporter) add(n int64) { r.done.Add(n) }

func (r *reporter) emitLocked() {
	if r.fn != nil && r.phase != "" {
		r.fn(Progress{Phase: r.phase, BytesDone: r.done.Load(), BytesTotal: r.total.Load()})
	}
}

func (r *reporter) tick() {
	defer r.wg.Done()
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	last := int64(-1)
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if d := r.done.Load(); d != last {
				last = d
				r.mu.Lock()
				r.emitLocked()
				r.mu.Unlock()
			}
		}
	}
}

// close stops the ticker; no call of fn follows.
func (r *reporter) close() {
	close(r.stop)
	r.wg.Wait()
}

// runPool runs fn(ctx, worker, i) for i in [0, n) on workers goroutines, each job once,
// in order of i. The first error cancels the others' context and is returned.
func runPool(ctx context.Context, workers, n int, fn func(ctx context.Context, worker, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, w, i); err != nil {
					once.Do(func() { first = err })
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}
