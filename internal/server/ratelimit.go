package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/onevault/readiness/internal/api"
)

// limiter counts requests per key in fixed windows: at most limit requests in each window.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	counts map[string]*windowCount
	now    func() time.Time
}

type windowCount struct {
	start time.Time
	n     int
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, counts: map[string]*windowCount{}, now: time.Now}
}

// allow counts one request of key; when refused it says how long until the window resets.
func (l *limiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w, ok := l.counts[key]
	if !ok || now.Sub(w.start) >= l.window {
		if len(l.counts) > 100_000 { // forget idle keys rather than grow without bound
			for k, c := range l.counts {
				if now.Sub(c.start) >= l.window {
					delete(l.counts, k)
				}
			}
		}
		w = &windowCount{start: now}
		l.counts[key] = w
	}
	if w.n >= l.limit {
		return false, w.start.Add(l.window).Sub(now)
	}
	w.n++
	return true, 0
}

// check counts one request of key and, past the limit, answers 429 with Retry-After.
func (l *limiter) check(c echo.Context, key string) error {
	ok, wait := l.allow(key)
	if ok {
		return nil
	}
	secs := int(wait.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return &api.Error{Status: http.StatusTooManyRequests, Code: api.CodeRateLimited,
		Message: "rate limit of " + strconv.Itoa(l.limit) + " requests a minute exceeded; retry after " + strconv.Itoa(secs) + "s"}
}
