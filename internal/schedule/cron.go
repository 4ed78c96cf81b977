// Package schedule holds the rules of a backup schedule: which definitions are
// valid and when a schedule fires. Storage and HTTP live elsewhere.
//
// Cron expressions are parsed exactly as gocron's CronJob(expr, false) parses
// them (cron.ParseStandard from github.com/robfig/cron/v3), so a schedule this
// package accepts is one the scheduler can run, and NextRuns predicts the
// fires the scheduler will produce.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrInvalidCron is wrapped by every error ParseCron returns.
var ErrInvalidCron = errors.New("invalid cron expression")

// ErrInvalidTimezone is wrapped by every error LoadLocation returns.
var ErrInvalidTimezone = errors.New("invalid time zone")

// cronForm tells a user what ParseCron expects; it ends most of its messages.
const cronForm = `expected 5 fields "minute hour day-of-month month day-of-week" (for example "0 2 * * *") ` +
	`or one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually`

// descriptors are the named schedules ParseStandard accepts, except @every,
// which is an interval rather than a calendar schedule and cannot be
// combined with an execution window in a meaningful way.
var descriptors = map[string]bool{
	"@hourly": true, "@daily": true, "@midnight": true, "@weekly": true,
	"@monthly": true, "@yearly": true, "@annually": true,
}

// cronFields names the five fields in order and holds a parser for each one
// alone, so an error can say which field is wrong; robfig's own messages
// ("end of range (25) above maximum (23): 25") do not.
var cronFields = []struct {
	name   string
	parser cron.Parser
}{
	{"minute", cron.NewParser(cron.Minute)},
	{"hour", cron.NewParser(cron.Hour)},
	{"day-of-month", cron.NewParser(cron.Dom)},
	{"month", cron.NewParser(cron.Month)},
	{"day-of-week", cron.NewParser(cron.Dow)},
}

// ParseCron parses a standard 5-field cron expression or one of the
// descriptors @hourly, @daily, @midnight, @weekly, @monthly, @yearly and
// @annually, with the semantics of cron.ParseStandard that gocron uses.
//
// It refuses what ParseStandard would refuse, and also an empty expression,
// a seconds field (6 fields), a CRON_TZ= or TZ= prefix (the schedule's
// timezone field says the zone, and gocron adds its own prefix), @every, and
// an expression that never fires, such as "0 0 30 2 *" (gocron refuses those
// too, with ErrCronJobInvalid). Surrounding white space is ignored, as it is
// once gocron has put its zone prefix in front. Errors wrap ErrInvalidCron and
// name the wrong field.
//
// The schedule returned carries no zone of its own: its Next works in the
// location of the time it is given, so pass times already converted with
// In(loc), as NextRuns does.
func ParseCron(expr string) (cron.Schedule, error) {
	fail := func(format string, args ...any) (cron.Schedule, error) {
		return nil, fmt.Errorf("%w %q: %s", ErrInvalidCron, expr, fmt.Sprintf(format, args...))
	}

	spec := strings.TrimSpace(expr)
	switch {
	case spec == "":
		return fail("empty; %s", cronForm)
	case strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ="):
		return fail("a CRON_TZ= or TZ= prefix is not allowed; the schedule's timezone field sets the zone")
	case spec == "@every" || strings.HasPrefix(spec, "@every "):
		return fail("@every intervals are not supported; %s", cronForm)
	case strings.HasPrefix(spec, "@"):
		if !descriptors[spec] {
			return fail("unknown descriptor %s; %s", spec, cronForm)
		}
	default:
		fields := strings.Fields(spec)
		switch {
		case len(fields) == 6:
			return fail("found 6 fields, but a seconds field is not supported; %s", cronForm)
		case len(fields) != len(cronFields):
			return fail("found %d fields; %s", len(fields), cronForm)
		}
		for i, f := range fields {
			if err := checkField(i, f); err != nil {
				return fail("%v", err)
			}
		}
	}

	sched, err := cron.ParseStandard(spec)
	if err != nil {
		// checkField catches every field error ParseStandard reports; this is
		// the safety net for anything it might add.
		return fail("%v", err)
	}
	// Like gocron, ask for one fire from now: robfig looks five years ahead
	// and returns the zero time when none matches.
	if sched.Next(time.Now()).IsZero() {
		return fail("never fires: no date matches its day-of-month, month and day-of-week fields")
	}
	return sched, nil
}

// checkField parses field i of an expression on its own and says which field
// is wrong and why.
func checkField(i int, f string) error {
	name := cronFields[i].name
	// Characters outside this set are refused by robfig anyway, and a field
	// like "TZ=UTC" would make the one-field parser treat it as a zone prefix
	// (and panic, for want of a space after it).
	for _, r := range f {
		if !strings.ContainsRune("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ*?,-/", r) {
			return fmt.Errorf("%s field %q: unexpected character %q", name, f, r)
		}
	}
	if _, err := cronFields[i].parser.Parse(f); err != nil {
		return fmt.Errorf("%s field %q: %v", name, f, err)
	}
	return nil
}

// LoadLocation loads an IANA time zone such as Europe/Berlin or UTC with
// time.LoadLocation. It refuses "" and "Local", whose meaning would depend on
// the server the scheduler happens to run on. Errors wrap ErrInvalidTimezone.
func LoadLocation(name string) (*time.Location, error) {
	switch name {
	case "":
		return nil, fmt.Errorf("%w: required; name an IANA time zone such as Europe/Berlin or UTC", ErrInvalidTimezone)
	case "Local":
		return nil, fmt.Errorf("%w %q: the server's local zone is not allowed; name an IANA time zone such as Europe/Berlin or UTC", ErrInvalidTimezone, name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w %q: not a known IANA time zone name such as Europe/Berlin or UTC", ErrInvalidTimezone, name)
	}
	return loc, nil
}

const (
	// searchYears bounds how far NextRuns looks ahead.
	searchYears = 10
	// maxCandidates bounds how many cron fires NextRuns examines, so a dense
	// cron whose fires almost never fall inside the window cannot spin.
	maxCandidates = 1_000_000
)

// NextRuns returns the next n fire times strictly after `after`, expressed in
// loc (so they carry the zone's offset when marshalled), skipping fires
// outside the window w when w is not nil. It looks at most 10 years or
// 1,000,000 fires ahead and returns fewer than n times, possibly none (an
// empty, non-nil slice), when the cron does not fire inside the window that
// often; "0 12 * * *" with window 22:00-04:00 returns no times at once.
//
// The times are those gocron's CronJob(expr, false) produces with the
// scheduler in loc, including its handling of daylight saving time. robfig's
// cron matches wall-clock fields in loc:
//
//   - Spring forward: a wall-clock time that does not exist that day is
//     skipped, not moved. "30 2 * * *" in Europe/Berlin fires 02:30+01:00 on
//     28 March 2026 and next at 02:30+02:00 on 30 March; on 29 March clocks
//     jump from 02:00 to 03:00 and there is no fire. This is gocron's default
//     DaylightSavingsTimePolicy for cron jobs.
//   - Fall back: robfig alone returns a repeated wall-clock time twice
//     (02:30+02:00 and 02:30+01:00 on 25 October 2026 in Berlin). gocron drops
//     a fire whose wall-clock date and time equal those of the fire before
//     it, and so does NextRuns, so "30 2 * * *" fires once, at the first
//     02:30. The same rule makes "0 * * * *" skip the repeated 02:00 hour.
//
// A window is compared with the wall-clock time in loc (see Window.Contains);
// gocron knows nothing of windows, so whoever runs a fire must skip it when
// Contains reports false, as NextRuns does.
func NextRuns(expr string, loc *time.Location, w *Window, after time.Time, n int) ([]time.Time, error) {
	if loc == nil {
		return nil, fmt.Errorf("%w: nil location", ErrInvalidTimezone)
	}
	sched, err := ParseCron(expr)
	if err != nil {
		return nil, err
	}
	var win *clockWindow
	if w != nil {
		cw, err := w.parse()
		if err != nil {
			return nil, err
		}
		win = &cw
	}

	runs := make([]time.Time, 0, min(max(n, 0), 64))
	if n <= 0 {
		return runs, nil
	}
	if win != nil && !win.reachable(sched) {
		return runs, nil
	}

	prev := after.In(loc)
	horizon := prev.AddDate(searchYears, 0, 0)
	for range maxCandidates {
		next := sched.Next(prev)
		if next.IsZero() || next.After(horizon) {
			break
		}
		// gocron's fall-back rule: the second of two fires with the same
		// wall-clock date and time is the same fire, an hour later.
		repeated := sameWallClock(prev, next)
		prev = next
		if repeated {
			continue
		}
		if win == nil || win.contains(next) {
			runs = append(runs, next)
			if len(runs) == n {
				break
			}
		}
	}
	return runs, nil
}

// sameWallClock reports whether a and b show the same date and time to the
// second on a clock in their (shared) location.
func sameWallClock(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd &&
		a.Hour() == b.Hour() && a.Minute() == b.Minute() && a.Second() == b.Second()
}
