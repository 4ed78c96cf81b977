package backup

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFiguresAt(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	running := Execution{Status: StatusRunning, StartedAt: &start,
		Progress: &Progress{Phase: "copy", BytesDone: 250 << 20, BytesTotal: 1000 << 20}}

	t.Run("a running backup has percent, throughput and the time left at that rate", func(t *testing.T) {
		f := running.FiguresAt(start.Add(10 * time.Second))
		require.NotNil(t, f)
		require.Equal(t, "copy", f.Phase)
		require.InDelta(t, 25.0, *f.Percent, 1e-9)
		require.InDelta(t, float64(25<<20), *f.ThroughputBytesPerSec, 1e-6)
		require.Equal(t, int64(30), *f.EtaSeconds, "750 MB left at 25 MB/s")
	})
	t.Run("before the total is known there is no percent and no ETA", func(t *testing.T) {
		e := running
		e.Progress = &Progress{Phase: "start", BytesDone: 1 << 20}
		f := e.FiguresAt(start.Add(time.Second))
		require.Nil(t, f.Percent)
		require.Nil(t, f.EtaSeconds)
		require.NotNil(t, f.ThroughputBytesPerSec)
	})
	t.Run("bytes done past the estimated total (files that grew) are 100%, with no ETA", func(t *testing.T) {
		e := running
		e.Progress = &Progress{Phase: "copy", BytesDone: 1001 << 20, BytesTotal: 1000 << 20}
		f := e.FiguresAt(start.Add(10 * time.Second))
		require.Equal(t, 100.0, *f.Percent)
		require.Nil(t, f.EtaSeconds)
	})
	t.Run("a finished backup has no progress", func(t *testing.T) {
		e := running
		e.Status = StatusCompleted
		require.Nil(t, e.FiguresAt(start.Add(time.Minute)))
	})
}
