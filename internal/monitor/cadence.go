package monitor

import (
	"errors"
	"time"

	"github.com/onevault/readiness/internal/schedule"
)

// errNeverFires means a schedule has no fire time (its cron never matches inside its window).
var errNeverFires = errors.New("the schedule never fires")

// cadence is where a moment falls among a schedule's fire times.
type cadence struct {
	// first is the schedule's first fire after it was created.
	first time.Time
	// prev is its last fire at or before the moment; zero before first.
	prev time.Time
	// interval is the gap between prev and the fire after it: the time one backup is expected to
	// cover now. Before the first fire it is the gap between the next two fires.
	interval time.Duration
}

// firePage is how many fire times one NextRuns call returns while searching backwards.
const firePage = 512

// maxSearchPages bounds the NextRuns calls of one search, for crons that fire densely in some
// months and not at all in others.
const maxSearchPages = 256

// cadenceAt places now among the fire times of sc, as schedule.NextRuns computes them (the
// scheduler's own fire times: time zone, daylight saving and window included). The interval
// is that of the period now is in, so a weekday schedule expects Friday's backup to last over
// the weekend.
func (sc scheduleSpec) cadenceAt(now time.Time) (cadence, error) {
	first, err := schedule.NextRuns(sc.cron, sc.loc, sc.window, sc.createdAt, 1)
	if err != nil {
		return cadence{}, err
	}
	next, err := schedule.NextRuns(sc.cron, sc.loc, sc.window, now, 2)
	if err != nil {
		return cadence{}, err
	}
	if len(first) == 0 || len(next) == 0 {
		return cadence{}, errNeverFires
	}
	c := cadence{first: first[0]}
	hint := time.Hour
	if len(next) == 2 {
		hint = next[1].Sub(next[0])
	}
	if !now.Before(c.first) {
		if c.prev, err = sc.lastFireAtOrBefore(now, hint); err != nil {
			return cadence{}, err
		}
	}
	switch {
	case !c.prev.IsZero():
		c.interval = next[0].Sub(c.prev)
	case len(next) == 2:
		c.interval = next[1].Sub(next[0])
	default:
		return cadence{}, errNeverFires
	}
	return c, nil
}

// lastFireAtOrBefore finds the newest fire time at or before now and not before the first
// fire, looking back hint, then four times further each round.
func (sc scheduleSpec) lastFireAtOrBefore(now time.Time, hint time.Duration) (time.Time, error) {
	floor := sc.createdAt // the first fire is strictly after it
	pages := 0
	for look := max(hint, time.Minute); ; look *= 4 {
		from := now.Add(-look)
		if from.Before(floor) {
			from = floor
		}
		var prev time.Time
		after := from
	scan:
		for {
			runs, err := schedule.NextRuns(sc.cron, sc.loc, sc.window, after, firePage)
			if err != nil {
				return time.Time{}, err
			}
			for _, r := range runs {
				if r.After(now) {
					break scan
				}
				prev = r
			}
			if pages++; len(runs) < firePage || pages >= maxSearchPages {
				break
			}
			after = runs[len(runs)-1]
		}
		if !prev.IsZero() || !from.After(floor) || pages >= maxSearchPages {
			return prev, nil
		}
	}
}
