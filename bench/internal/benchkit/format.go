package benchkit

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// PassFail names the outcome of a target.
func PassFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// Check prints whether got equals want.
func Check(got, want int64) string {
	if got == want {
		return fmt.Sprintf("yes (%d)", got)
	}
	return fmt.Sprintf("NO: %d ≠ %d", got, want)
}

// Ratio prints a ÷ b, or a dash when b is zero.
func Ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// Pct returns part as a percentage of whole.
func Pct(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// MBps prints bytes ÷ d in decimal megabytes a second.
func MBps(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MB/s", float64(bytes)/1e6/d.Seconds())
}

// FormatBytes prints a size in decimal units with three significant digits.
func FormatBytes(n int64) string {
	f := float64(n)
	for _, u := range []struct {
		div  float64
		unit string
	}{{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "kB"}} {
		if f >= u.div {
			v := f / u.div
			switch {
			case v >= 100:
				return fmt.Sprintf("%.0f %s", v, u.unit)
			case v >= 10:
				return fmt.Sprintf("%.1f %s", v, u.unit)
			default:
				return fmt.Sprintf("%.2f %s", v, u.unit)
			}
		}
	}
	return fmt.Sprintf("%d B", n)
}

// FmtDur prints a duration with about three significant digits, in ms below a second.
func FmtDur(d time.Duration) string {
	switch {
	case d >= 100*time.Second:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond || d == 0:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

// DurList prints durations separated by commas.
func DurList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = FmtDur(d)
	}
	return strings.Join(parts, ", ")
}

// Median returns the median of ds (the mean of the middle two for an even count).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Quantile returns the q-quantile of ds (nearest rank: the smallest value with at least
// q of the values at or below it).
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Table prints a markdown table.
func Table(header []string, align string, rows [][]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |\n", strings.Join(header, " | "))
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---:"
		if i < len(align) && align[i] == 'l' {
			seps[i] = "---"
		}
	}
	fmt.Fprintf(&b, "|%s|\n", strings.Join(seps, "|"))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	return b.String()
}
