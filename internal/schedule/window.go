package schedule

import (
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrInvalidWindow is wrapped by the errors about an execution window that
// NextRuns returns.
var ErrInvalidWindow = errors.New("invalid execution window")

// Window is the part of the day in which a schedule may start a backup, as
// "HH:mm" wall-clock times in the schedule's zone. It may wrap past midnight
// (22:00-04:00). Start is inclusive and End exclusive; Start == End is
// refused by Validate rather than read as "all day" or "never".
type Window struct{ Start, End string }

// clockWindow is a parsed Window in minutes since midnight.
type clockWindow struct{ start, end int }

// parseClock parses a strict "HH:mm" 24-hour time into minutes since
// midnight: two digits each, 00:00 to 23:59.
func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' || !isDigit(s[0]) || !isDigit(s[1]) || !isDigit(s[3]) || !isDigit(s[4]) {
		return 0, fmt.Errorf("%q is not a time in HH:mm form, such as 22:00", s)
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day between 00:00 and 23:59", s)
	}
	return h*60 + m, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parse checks both ends and that they differ.
func (w Window) parse() (clockWindow, error) {
	start, err := parseClock(w.Start)
	if err != nil {
		return clockWindow{}, fmt.Errorf("%w: start time %v", ErrInvalidWindow, err)
	}
	end, err := parseClock(w.End)
	if err != nil {
		return clockWindow{}, fmt.Errorf("%w: end time %v", ErrInvalidWindow, err)
	}
	if start == end {
		return clockWindow{}, fmt.Errorf("%w: start and end are both %s; they must differ", ErrInvalidWindow, w.Start)
	}
	return clockWindow{start, end}, nil
}

// Contains reports whether the wall-clock time of t falls inside the window:
// at or after Start and before End, across midnight when End is earlier than
// Start. t must already be in the schedule's zone. A window that Validate
// would refuse contains nothing.
func (w Window) Contains(t time.Time) bool {
	cw, err := w.parse()
	if err != nil {
		return false
	}
	return cw.contains(t)
}

func (cw clockWindow) contains(t time.Time) bool {
	return cw.containsSecond(t.Hour()*3600 + t.Minute()*60 + t.Second())
}

// containsSecond reports whether the second of the day s lies in the window.
func (cw clockWindow) containsSecond(s int) bool {
	start, end := cw.start*60, cw.end*60
	if start < end {
		return s >= start && s < end
	}
	return s >= start || s < end
}

// reachable reports whether any hour and minute the schedule fires at lies
// inside the window. Fires happen at those wall-clock times, so when none
// does the schedule never fires inside the window and NextRuns need not
// search. Schedules of a type other than robfig's SpecSchedule are assumed
// reachable and left to the bounded search.
func (cw clockWindow) reachable(s cron.Schedule) bool {
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return true
	}
	for h := range 24 {
		if spec.Hour&(1<<uint(h)) == 0 {
			continue
		}
		for m := range 60 {
			if spec.Minute&(1<<uint(m)) != 0 && cw.containsSecond((h*60+m)*60) {
				return true
			}
		}
	}
	return false
}
