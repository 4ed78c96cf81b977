package schedule

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// rfc3339 formats times with their offsets, which is what the tests about
// daylight saving time are really checking.
func rfc3339(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format(time.RFC3339)
	}
	return out
}

func TestParseCron(t *testing.T) {
	t.Run("accepts standard five-field expressions and the calendar descriptors", func(t *testing.T) {
		for _, expr := range []string{
			"0 2 * * *",
			"*/15 * * * *",
			"0 */6 * * *",
			"30 1 1,15 * *",
			"0 3 * * MON-FRI",
			"0 0 1 JAN *",
			"0 2 ? * SUN",
			"0 0 29 2 *",
			"  0 2 * * *  ",
			"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
			" @daily ",
		} {
			sched, err := ParseCron(expr)
			require.NoError(t, err, expr)
			require.NotNil(t, sched, expr)
		}
	})

	t.Run("refuses expressions gocron cannot run or that the timezone field owns, saying why", func(t *testing.T) {
		tests := []struct {
			expr string
			why  string
		}{
			{"", "empty; expected 5 fields"},
			{"   ", "empty; expected 5 fields"},
			{"0 0 2 * * *", "found 6 fields, but a seconds field is not supported"},
			{"0 2 * *", "found 4 fields; expected 5 fields"},
			{"0 2 * * * * *", "found 7 fields"},
			{"CRON_TZ=Europe/Berlin 0 2 * * *", "CRON_TZ= or TZ= prefix is not allowed"},
			{"TZ=UTC 0 2 * * *", "CRON_TZ= or TZ= prefix is not allowed"},
			{"CRON_TZ=UTC", "CRON_TZ= or TZ= prefix is not allowed"},
			{"@every 1h", "@every intervals are not supported"},
			{"@every", "@every intervals are not supported"},
			{"@reboot", "unknown descriptor @reboot"},
			{"@DAILY", "unknown descriptor @DAILY"},
			{"@daily 0", "unknown descriptor @daily 0"},
			{"60 * * * *", `minute field "60": end of range (60) above maximum (59)`},
			{"0 24 * * *", `hour field "24": end of range (24) above maximum (23)`},
			{"0 0 0 * *", `day-of-month field "0": beginning of range (0) below minimum (1)`},
			{"0 0 32 * *", `day-of-month field "32"`},
			{"0 0 * 13 *", `month field "13": end of range (13) above maximum (12)`},
			{"0 0 * * 7", `day-of-week field "7": end of range (7) above maximum (6)`},
			{"0 0 * * FOO", `day-of-week field "FOO": failed to parse int from FOO`},
			{"*/0 * * * *", `minute field "*/0": step of range should be a positive number`},
			{"5-1 * * * *", `minute field "5-1": beginning of range (5) beyond end of range (1)`},
			{"1-2-3 * * * *", `minute field "1-2-3": too many hyphens`},
			{"0 TZ=UTC * * *", `hour field "TZ=UTC": unexpected character '='`},
			{"0 @daily * * *", `hour field "@daily": unexpected character '@'`},
			{"0 0 30 2 *", "never fires"},
			{"0 0 31 4,6,9,11 *", "never fires"},
		}
		for _, tt := range tests {
			_, err := ParseCron(tt.expr)
			require.Error(t, err, "%q must be refused", tt.expr)
			require.ErrorIs(t, err, ErrInvalidCron)
			require.Contains(t, err.Error(), tt.why, tt.expr)
		}
	})

	t.Run("agrees with gocron on which expressions it can run", func(t *testing.T) {
		// Every expression ParseCron accepts, gocron accepts; those it refuses
		// beyond gocron's own rules are the prefix and @every forms.
		berlin := mustLoad(t, "Europe/Berlin")
		now := time.Now()
		for _, expr := range []string{"0 2 * * *", " @daily ", "0 3 * * MON-FRI", "0 0 29 2 *", "@annually"} {
			_, err := ParseCron(expr)
			require.NoError(t, err, expr)
			require.NoError(t, gocron.NewDefaultCron(false).IsValid(expr, berlin, now), expr)
		}
		for _, expr := range []string{"", "0 0 2 * * *", "60 * * * *", "@reboot", "0 0 30 2 *", "0 0 * * 7"} {
			_, err := ParseCron(expr)
			require.Error(t, err, expr)
			require.Error(t, gocron.NewDefaultCron(false).IsValid(expr, berlin, now), expr)
		}
	})

	t.Run("returns a schedule that fires in the zone of the time it is given", func(t *testing.T) {
		sched, err := ParseCron("0 2 * * *")
		require.NoError(t, err)
		ny := mustLoad(t, "America/New_York")
		next := sched.Next(time.Date(2026, 6, 1, 12, 0, 0, 0, ny))
		require.Equal(t, "2026-06-02T02:00:00-04:00", next.Format(time.RFC3339))
	})
}

func TestLoadLocation(t *testing.T) {
	t.Run("loads IANA zone names and UTC", func(t *testing.T) {
		for _, name := range []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"} {
			loc, err := LoadLocation(name)
			require.NoError(t, err, name)
			require.Equal(t, name, loc.String())
		}
	})

	t.Run("refuses an empty name, Local and unknown names", func(t *testing.T) {
		tests := []struct{ name, why string }{
			{"", "required"},
			{"Local", "server's local zone is not allowed"},
			{"Mars/Olympus_Mons", "not a known IANA time zone name"},
			{"../../etc/passwd", "not a known IANA time zone name"},
		}
		for _, tt := range tests {
			_, err := LoadLocation(tt.name)
			require.ErrorIs(t, err, ErrInvalidTimezone, tt.name)
			require.Contains(t, err.Error(), tt.why, tt.name)
		}
	})
}

func TestNextRuns(t *testing.T) {
	newYork := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")

	t.Run("returns fire times strictly after the given time, in the schedule's zone", func(t *testing.T) {
		after := time.Date(2026, 6, 1, 2, 0, 0, 0, berlin) // itself a fire time
		runs, err := NextRuns("0 2 * * *", berlin, nil, after.UTC(), 3)
		require.NoError(t, err)
		require.Equal(t, []string{
			"2026-06-02T02:00:00+02:00",
			"2026-06-03T02:00:00+02:00",
			"2026-06-04T02:00:00+02:00",
		}, rfc3339(runs))
		for _, r := range runs {
			require.Equal(t, berlin, r.Location())
		}
	})

	t.Run("marshals fire times to JSON with the zone's offset", func(t *testing.T) {
		runs, err := NextRuns("30 2 * * *", newYork, nil, time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC), 1)
		require.NoError(t, err)
		b, err := json.Marshal(runs)
		require.NoError(t, err)
		require.JSONEq(t, `["2026-03-09T02:30:00-04:00"]`, string(b))
	})

	dst := []struct {
		name  string
		loc   *time.Location
		expr  string
		after time.Time
		want  []string
	}{
		{
			name:  "in New York skips 02:30 on 8 March 2026 because clocks jump from 02:00 to 03:00",
			loc:   newYork,
			expr:  "30 2 * * *",
			after: time.Date(2026, 3, 7, 0, 0, 0, 0, newYork),
			want:  []string{"2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"},
		},
		{
			name:  "in New York fires hourly through the spring-forward gap without inventing 02:00",
			loc:   newYork,
			expr:  "0 * * * *",
			after: time.Date(2026, 3, 8, 0, 30, 0, 0, newYork),
			want:  []string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"},
		},
		{
			name:  "in New York fires 01:30 once on 1 November 2026 although the clock shows it twice",
			loc:   newYork,
			expr:  "30 1 * * *",
			after: time.Date(2026, 10, 31, 0, 0, 0, 0, newYork),
			want:  []string{"2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"},
		},
		{
			name:  "in New York skips the repeated 01:00 hour on 1 November 2026 as gocron does",
			loc:   newYork,
			expr:  "0 * * * *",
			after: time.Date(2026, 11, 1, 0, 30, 0, 0, newYork),
			want:  []string{"2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"},
		},
		{
			name:  "in Berlin skips 02:30 on 29 March 2026 because clocks jump from 02:00 to 03:00",
			loc:   berlin,
			expr:  "30 2 * * *",
			after: time.Date(2026, 3, 28, 0, 0, 0, 0, berlin),
			want:  []string{"2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"},
		},
		{
			name:  "in Berlin fires 02:30 once on 25 October 2026 although the clock shows it twice",
			loc:   berlin,
			expr:  "30 2 * * *",
			after: time.Date(2026, 10, 24, 0, 0, 0, 0, berlin),
			want:  []string{"2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"},
		},
		{
			name:  "in Berlin fires every six hours across the fall-back change with the new offset",
			loc:   berlin,
			expr:  "0 */6 * * *",
			after: time.Date(2026, 10, 24, 20, 0, 0, 0, berlin),
			want:  []string{"2026-10-25T00:00:00+02:00", "2026-10-25T06:00:00+01:00", "2026-10-25T12:00:00+01:00"},
		},
	}
	for _, tt := range dst {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := NextRuns(tt.expr, tt.loc, nil, tt.after, len(tt.want))
			require.NoError(t, err)
			require.Equal(t, tt.want, rfc3339(runs))
		})
	}

	t.Run("predicts the same fires as a gocron scheduler in the same zone", func(t *testing.T) {
		cases := []struct {
			loc  *time.Location
			expr string
			from time.Time
		}{
			{newYork, "30 2 * * *", time.Date(2026, 3, 6, 12, 0, 0, 0, time.UTC)},
			{newYork, "30 1 * * *", time.Date(2026, 10, 30, 12, 0, 0, 0, time.UTC)},
			{newYork, "0 * * * *", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)},
			{newYork, "*/30 * * * *", time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC)},
			{berlin, "30 2 * * *", time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)},
			{berlin, "30 2 * * *", time.Date(2026, 10, 23, 12, 0, 0, 0, time.UTC)},
			{berlin, "0 * * * *", time.Date(2026, 10, 24, 21, 30, 0, 0, time.UTC)},
			{berlin, "@daily", time.Date(2026, 10, 23, 12, 0, 0, 0, time.UTC)},
		}
		for _, c := range cases {
			const n = 8
			ours, err := NextRuns(c.expr, c.loc, nil, c.from, n)
			require.NoError(t, err)
			require.Equal(t, rfc3339(gocronRuns(t, c.loc, c.expr, c.from, n)), rfc3339(ours), "%s in %s", c.expr, c.loc)
		}
	})

	t.Run("skips fires outside the window: 0 */6 with 01:00-07:00 fires only at 06:00", func(t *testing.T) {
		w := &Window{Start: "01:00", End: "07:00"}
		runs, err := NextRuns("0 */6 * * *", time.UTC, w, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), 3)
		require.NoError(t, err)
		require.Equal(t, []string{"2026-06-01T06:00:00Z", "2026-06-02T06:00:00Z", "2026-06-03T06:00:00Z"}, rfc3339(runs))
	})

	t.Run("keeps fires inside a window that wraps past midnight", func(t *testing.T) {
		w := &Window{Start: "22:00", End: "04:00"}
		runs, err := NextRuns("0 * * * *", berlin, w, time.Date(2026, 6, 1, 12, 0, 0, 0, berlin), 7)
		require.NoError(t, err)
		require.Equal(t, []string{
			"2026-06-01T22:00:00+02:00",
			"2026-06-01T23:00:00+02:00",
			"2026-06-02T00:00:00+02:00",
			"2026-06-02T01:00:00+02:00",
			"2026-06-02T02:00:00+02:00",
			"2026-06-02T03:00:00+02:00",
			"2026-06-02T22:00:00+02:00",
		}, rfc3339(runs))
	})

	t.Run("compares the window with wall-clock time on a spring-forward day", func(t *testing.T) {
		w := &Window{Start: "01:00", End: "04:00"}
		runs, err := NextRuns("0 * * * *", berlin, w, time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), 3)
		require.NoError(t, err)
		require.Equal(t, []string{
			"2026-03-29T01:00:00+01:00",
			"2026-03-29T03:00:00+02:00",
			"2026-03-30T01:00:00+02:00",
		}, rfc3339(runs))
	})

	t.Run("returns an empty slice at once when the window excludes every fire", func(t *testing.T) {
		for _, c := range []struct {
			expr string
			w    Window
		}{
			{"0 12 * * *", Window{Start: "22:00", End: "04:00"}},
			{"* 5-20 * * *", Window{Start: "22:00", End: "04:00"}},
			{"0 */6 * * *", Window{Start: "01:00", End: "06:00"}},
			{"@daily", Window{Start: "00:01", End: "23:59"}},
		} {
			runs, err := NextRuns(c.expr, berlin, &c.w, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 5)
			require.NoError(t, err)
			require.NotNil(t, runs, "an empty result must marshal as [], not null")
			require.Empty(t, runs, "%s in %s-%s", c.expr, c.w.Start, c.w.End)
		}
	})

	t.Run("returns fewer runs than asked when the search horizon ends first", func(t *testing.T) {
		// A 29 February fire happens about twice in ten years.
		runs, err := NextRuns("0 0 29 2 *", time.UTC, nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}, rfc3339(runs))
	})

	t.Run("returns an empty slice when no runs are asked for", func(t *testing.T) {
		runs, err := NextRuns("@hourly", time.UTC, nil, time.Now(), 0)
		require.NoError(t, err)
		require.NotNil(t, runs)
		require.Empty(t, runs)
	})

	t.Run("refuses a bad expression, a bad window and a nil location", func(t *testing.T) {
		_, err := NextRuns("0 0 2 * * *", time.UTC, nil, time.Now(), 1)
		require.ErrorIs(t, err, ErrInvalidCron)

		_, err = NextRuns("@daily", time.UTC, &Window{Start: "22:00", End: "22:00"}, time.Now(), 1)
		require.ErrorIs(t, err, ErrInvalidWindow)

		_, err = NextRuns("@daily", time.UTC, &Window{Start: "2200", End: "04:00"}, time.Now(), 1)
		require.ErrorIs(t, err, ErrInvalidWindow)

		_, err = NextRuns("@daily", nil, nil, time.Now(), 1)
		require.ErrorIs(t, err, ErrInvalidTimezone)
	})
}

// gocronRuns asks a gocron scheduler, set to loc with a clock stopped at
// from, for the next n runs of CronJob(expr, false). The clock never moves,
// so the job never runs.
func gocronRuns(t *testing.T, loc *time.Location, expr string, from time.Time, n int) []time.Time {
	t.Helper()
	s, err := gocron.NewScheduler(gocron.WithLocation(loc), gocron.WithClock(clockwork.NewFakeClockAt(from)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Shutdown()) })

	job, err := s.NewJob(gocron.CronJob(expr, false), gocron.NewTask(func() {}))
	require.NoError(t, err)
	s.Start()

	var runs []time.Time
	require.Eventually(t, func() bool {
		runs, err = job.NextRuns(n)
		return err == nil && len(runs) == n
	}, 5*time.Second, 5*time.Millisecond, "gocron did not schedule %s", expr)
	for i := range runs {
		runs[i] = runs[i].In(loc)
	}
	return runs
}
