package retention

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePeriod(t *testing.T) {
	t.Run("accepts well-formed durations and writes them back canonically", func(t *testing.T) {
		tests := []struct {
			in   string
			want Period
			str  string
		}{
			{"P7Y", Period{Years: 7}, "P7Y"},
			{"P30D", Period{Days: 30}, "P30D"},
			{"PT12H", Period{Hours: 12}, "PT12H"},
			{"P1Y2M3DT4H", Period{Years: 1, Months: 2, Days: 3, Hours: 4}, "P1Y2M3DT4H"},
			{"P2W", Period{Weeks: 2}, "P2W"},
			{"P1M", Period{Months: 1}, "P1M"},
			{"PT1M", Period{Minutes: 1}, "PT1M"},
			{"P1MT1M", Period{Months: 1, Minutes: 1}, "P1MT1M"},
			{"PT90S", Period{Seconds: 90}, "PT90S"},
			{"P1Y2M3W4DT5H6M7S", Period{1, 2, 3, 4, 5, 6, 7}, "P1Y2M3W4DT5H6M7S"},
			{"P0Y1D", Period{Days: 1}, "P1D"},
			{"P007D", Period{Days: 7}, "P7D"},
			{"P1DT0H", Period{Days: 1}, "P1D"},
			{"P999999999Y", Period{Years: 999999999}, "P999999999Y"},
		}
		for _, tt := range tests {
			got, err := ParsePeriod(tt.in)
			require.NoError(t, err, tt.in)
			require.Equal(t, tt.want, got, tt.in)
			require.Equal(t, tt.str, got.String(), tt.in)

			again, err := ParsePeriod(got.String())
			require.NoError(t, err, "canonical form of %s must parse", tt.in)
			require.Equal(t, got, again)
		}
	})

	t.Run("refuses malformed durations and says why", func(t *testing.T) {
		tests := []struct {
			in  string
			why string
		}{
			{"", "empty duration"},
			{"P", "empty duration: no components after P"},
			{"PT", "empty time part: no components after T"},
			{"P1DT", "empty time part: no components after T"},
			{"P5", "missing designator after 5"},
			{"PT5", "missing designator after 5"},
			{"P1Y5", "missing designator after 5"},
			{"PY", "missing number before Y"},
			{"PTH", "missing number before H"},
			{"p7y", "must start with an uppercase P"},
			{"P7y", "designator y after 7 must be uppercase"},
			{"7Y", "must start with P"},
			{" P7Y", "must start with P"},
			{"P7Y ", "unexpected character ' '"},
			{"-P1D", "signed durations are not supported"},
			{"+P1D", "signed durations are not supported"},
			{"P-1D", "signed numbers are not supported"},
			{"P1.5Y", "fractions such as 1.5 are not supported"},
			{"PT0,5H", "fractions such as 0,5 are not supported"},
			{"P1D1Y", "designator Y after 1 is repeated or out of order"},
			{"P1Y1Y", "designator Y after 1 is repeated or out of order"},
			{"P1W1M", "designator M after 1 is repeated or out of order"},
			{"PT1S1H", "designator H after 1 is repeated or out of order"},
			{"P1H", "H after 1 belongs to the time part and needs a T before it"},
			{"P1S", "S after 1 belongs to the time part"},
			{"PT1D", "D after 1 belongs to the date part and must come before T"},
			{"PT1Y", "Y after 1 belongs to the date part"},
			{"PT1HT1M", "T appears twice"},
			{"P1X", "unknown designator 'X' after 1"},
			{"P0D", "duration must be greater than zero"},
			{"PT0S", "duration must be greater than zero"},
			{"P0Y0M0W0DT0H0M0S", "duration must be greater than zero"},
			{"P1000000000Y", "number 1000000000 is too large"},
			{"PT999999999H", "time part is too long"},
		}
		for _, tt := range tests {
			_, err := ParsePeriod(tt.in)
			require.Error(t, err, "%q must be refused", tt.in)
			require.ErrorIs(t, err, ErrInvalidPeriod)
			require.Contains(t, err.Error(), tt.why, tt.in)
		}
	})
}

func TestPeriodString(t *testing.T) {
	t.Run("writes the zero period as P0D", func(t *testing.T) {
		require.Equal(t, "P0D", Period{}.String())
	})

	t.Run("does not carry components into larger units", func(t *testing.T) {
		require.Equal(t, "P14DT90M", Period{Days: 14, Minutes: 90}.String())
	})
}

func TestYears(t *testing.T) {
	t.Run("builds a period of whole years", func(t *testing.T) {
		require.Equal(t, Period{Years: 7}, Years(7))
		require.Equal(t, "P7Y", Years(7).String())
	})
}

func TestPeriodAddTo(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)

	tests := []struct {
		name   string
		period string
		from   time.Time
		want   time.Time
	}{
		{
			name:   "seven years lands on the same calendar day",
			period: "P7Y",
			from:   time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC),
			want:   time.Date(2033, 3, 15, 10, 0, 0, 0, time.UTC),
		},
		{
			name:   "a year from 29 February normalises to 1 March like AddDate",
			period: "P1Y",
			from:   time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC),
			want:   time.Date(2029, 3, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:   "a month from 31 January overflows into March like AddDate",
			period: "P1M",
			from:   time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
			want:   time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC),
		},
		{
			name:   "two weeks is fourteen calendar days",
			period: "P2W",
			from:   time.Date(2026, 12, 25, 8, 0, 0, 0, time.UTC),
			want:   time.Date(2027, 1, 8, 8, 0, 0, 0, time.UTC),
		},
		{
			name:   "a day across the spring-forward change keeps the wall-clock time",
			period: "P1D",
			from:   time.Date(2026, 3, 28, 12, 0, 0, 0, berlin),
			want:   time.Date(2026, 3, 29, 12, 0, 0, 0, berlin),
		},
		{
			name:   "twenty-four hours across the spring-forward change is elapsed time",
			period: "PT24H",
			from:   time.Date(2026, 3, 28, 12, 0, 0, 0, berlin),
			want:   time.Date(2026, 3, 29, 13, 0, 0, 0, berlin),
		},
		{
			name:   "the date part is applied before the time part",
			period: "P1Y2M3DT4H5M6S",
			from:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			want:   time.Date(2027, 3, 4, 4, 5, 6, 0, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePeriod(tt.period)
			require.NoError(t, err)
			got := p.AddTo(tt.from)
			require.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got)
			require.Equal(t, tt.from.Location(), got.Location())
		})
	}
}
