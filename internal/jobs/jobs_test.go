package jobs_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/internal/jobs"
)

func TestPriority(t *testing.T) {
	t.Run("a higher API priority is worked first and every value maps into river's 1 to 4", func(t *testing.T) {
		prev := 5
		for p := 1; p <= 10; p++ {
			got := jobs.Priority(p)
			require.GreaterOrEqual(t, got, 1)
			require.LessOrEqual(t, got, 4)
			require.LessOrEqual(t, got, prev, "priority %d must not be worked later than %d", p, p-1)
			prev = got
		}
		require.Equal(t, 1, jobs.Priority(10))
		require.Equal(t, 4, jobs.Priority(1))
	})
}
