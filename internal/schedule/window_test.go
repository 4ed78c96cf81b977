package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWindowContains(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2026, 6, 1, h, m, s, 0, time.UTC) }

	t.Run("a window that wraps past midnight contains late evening and early morning", func(t *testing.T) {
		w := Window{Start: "22:00", End: "04:00"}
		require.True(t, w.Contains(at(23, 30, 0)), "23:30")
		require.True(t, w.Contains(at(3, 59, 0)), "03:59")
		require.True(t, w.Contains(at(3, 59, 59)), "03:59:59")
		require.True(t, w.Contains(at(22, 0, 0)), "22:00, the start, is inside")
		require.True(t, w.Contains(at(0, 0, 0)), "midnight")
		require.False(t, w.Contains(at(4, 0, 0)), "04:00, the end, is outside")
		require.False(t, w.Contains(at(12, 0, 0)), "12:00")
		require.False(t, w.Contains(at(21, 59, 59)), "21:59:59")
	})

	t.Run("a window within one day contains its start and not its end", func(t *testing.T) {
		w := Window{Start: "01:00", End: "07:00"}
		require.True(t, w.Contains(at(1, 0, 0)))
		require.True(t, w.Contains(at(6, 59, 59)))
		require.False(t, w.Contains(at(7, 0, 0)))
		require.False(t, w.Contains(at(0, 59, 59)))
		require.False(t, w.Contains(at(23, 0, 0)))
	})

	t.Run("reads the wall clock of the time as given, in its own zone", func(t *testing.T) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		require.NoError(t, err)
		w := Window{Start: "22:00", End: "04:00"}
		late := time.Date(2026, 6, 1, 23, 30, 0, 0, berlin)
		require.True(t, w.Contains(late))
		require.False(t, w.Contains(late.UTC()), "21:30 UTC is outside")
	})

	t.Run("a window Validate would refuse contains nothing", func(t *testing.T) {
		for _, w := range []Window{{"22:00", "22:00"}, {"25:00", "04:00"}, {"22:00", ""}, {"2200", "0400"}} {
			require.False(t, w.Contains(at(23, 0, 0)), "%v", w)
			require.False(t, w.Contains(at(3, 0, 0)), "%v", w)
		}
	})
}

func TestParseClock(t *testing.T) {
	t.Run("accepts two-digit 24-hour times", func(t *testing.T) {
		for in, want := range map[string]int{"00:00": 0, "04:00": 240, "22:30": 1350, "23:59": 1439} {
			got, err := parseClock(in)
			require.NoError(t, err, in)
			require.Equal(t, want, got, in)
		}
	})

	t.Run("refuses anything else", func(t *testing.T) {
		for _, in := range []string{"", "4:00", "04:0", "0400", "24:00", "23:60", "04-00", " 04:00", "04:00:00", "+4:00", "０4:00"} {
			_, err := parseClock(in)
			require.Error(t, err, "%q", in)
		}
	})
}
