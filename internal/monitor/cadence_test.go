package monitor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/schedule"
)

func TestCadence(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		require.NoError(t, err)
		return v
	}
	longAgo := at(time.UTC, "2020-01-01 00:00")

	cases := []struct {
		name     string
		spec     scheduleSpec
		now      time.Time
		first    time.Time
		prev     time.Time // zero: none yet
		interval time.Duration
	}{
		{
			name: "an hourly schedule is in the hour that began at its last fire",
			spec: scheduleSpec{cron: "0 * * * *", loc: time.UTC, createdAt: longAgo},
			now:  at(time.UTC, "2026-06-10 10:20"), first: at(time.UTC, "2020-01-01 01:00"),
			prev: at(time.UTC, "2026-06-10 10:00"), interval: time.Hour,
		},
		{
			name: "a weekday schedule expects Friday's backup to last until Monday",
			spec: scheduleSpec{cron: "0 2 * * 1-5", loc: time.UTC, createdAt: longAgo},
			now:  at(time.UTC, "2026-06-14 12:00"), first: at(time.UTC, "2020-01-01 02:00"),
			prev: at(time.UTC, "2026-06-12 02:00"), interval: 72 * time.Hour,
		},
		{
			name: "before its first fire a schedule's interval is that of its next two fires",
			spec: scheduleSpec{cron: "0 2 * * *", loc: time.UTC, createdAt: at(time.UTC, "2026-06-10 10:00")},
			now:  at(time.UTC, "2026-06-10 11:00"), first: at(time.UTC, "2026-06-11 02:00"),
			interval: 24 * time.Hour,
		},
		{
			name: "a fire that does not exist on the spring-forward day makes that interval two days",
			spec: scheduleSpec{cron: "30 2 * * *", loc: berlin, createdAt: longAgo},
			now:  at(berlin, "2026-03-29 12:00"), first: at(berlin, "2020-01-01 02:30"),
			prev: at(berlin, "2026-03-28 02:30"), interval: 47 * time.Hour,
		},
		{
			name: "fires outside the window do not count",
			spec: scheduleSpec{cron: "0 * * * *", loc: time.UTC, window: &schedule.Window{Start: "22:00", End: "04:00"}, createdAt: longAgo},
			now:  at(time.UTC, "2026-06-10 12:00"), first: at(time.UTC, "2020-01-01 00:00").Add(time.Hour),
			prev: at(time.UTC, "2026-06-10 03:00"), interval: 19 * time.Hour,
		},
		{
			name: "a schedule dense in January and silent after is found back in January",
			spec: scheduleSpec{cron: "* * 1 1 *", loc: time.UTC, createdAt: at(time.UTC, "2025-06-01 00:00")},
			now:  at(time.UTC, "2026-03-10 00:00"), first: at(time.UTC, "2026-01-01 00:00"),
			prev: at(time.UTC, "2026-01-01 23:59"), interval: at(time.UTC, "2027-01-01 00:00").Sub(at(time.UTC, "2026-01-01 23:59")),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.spec.cadenceAt(c.now)
			require.NoError(t, err)
			require.True(t, c.first.Equal(got.first), "first: want %s, got %s", c.first, got.first)
			require.True(t, c.prev.Equal(got.prev), "prev: want %s, got %s", c.prev, got.prev)
			require.Equal(t, c.interval, got.interval)
		})
	}

	t.Run("a schedule that never fires inside its window says so", func(t *testing.T) {
		sc := scheduleSpec{cron: "0 12 * * *", loc: time.UTC, window: &schedule.Window{Start: "22:00", End: "04:00"}, createdAt: longAgo}
		_, err := sc.cadenceAt(at(time.UTC, "2026-06-10 12:00"))
		require.ErrorIs(t, err, errNeverFires)
	})
}

func TestRateSchedule(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	daily := scheduleSpec{name: "nightly", cron: "0 2 * * *", loc: time.UTC, createdAt: now.AddDate(0, 0, -30)}
	ago := func(d time.Duration) *time.Time { v := now.Add(-d); return &v }
	for _, c := range []struct {
		age    time.Duration
		status string
	}{
		{0, StatusNormal},
		{36*time.Hour - time.Second, StatusNormal},
		{36 * time.Hour, StatusWarning},
		{72*time.Hour - time.Second, StatusWarning},
		{72 * time.Hour, StatusCritical},
	} {
		m := rateSchedule(daily, ago(c.age), now)
		require.Equal(t, c.status, m.Status, "a backup %s old against a daily schedule", c.age)
		require.Equal(t, c.age.Seconds(), m.Value)
		require.Equal(t, 36*3600.0, *m.Threshold)
	}
	m := rateSchedule(daily, nil, now)
	require.Equal(t, StatusCritical, m.Status, "no backup after its first fire")
	require.Equal(t, now.Sub(time.Date(2026, 5, 12, 2, 0, 0, 0, time.UTC)).Seconds(), m.Value)
}
