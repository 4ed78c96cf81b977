// Package retention parses and applies the ISO 8601 durations that say how
// long a backup is kept (retentionPeriod on the wire, for example P7Y).
package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidPeriod is wrapped by every error ParsePeriod returns, so callers
// can tell a refused duration from other failures with errors.Is.
var ErrInvalidPeriod = errors.New("invalid ISO 8601 duration")

// maxDigits bounds every number in a duration. Nine digits keep years, months
// and days far from int overflow in time.Time.AddDate, and a retention period
// longer than 999,999,999 of any unit is a typing mistake, not a policy.
const maxDigits = 9

// Period is an ISO 8601 duration like P7Y, P30D, PT12H, P1Y2M3DT4H or P2W.
//
// The date components (years, months, weeks, days) are calendar units whose
// length depends on where they are applied, so a Period is kept as its
// components and never reduced to a time.Duration; AddTo applies it to an
// instant.
type Period struct {
	Years, Months, Weeks, Days, Hours, Minutes, Seconds int
}

// Years returns a period of n years, the unit retention policies are usually
// written in (P7Y).
func Years(n int) Period {
	return Period{Years: n}
}

// designator is one component of the grammar, in the order ISO 8601 requires.
type designator struct {
	letter   byte
	timePart bool
	name     string
}

// designators lists the components in their required order: the date part
// (Y, M, W, D), then after T the time part (H, M, S). Weeks may be combined
// with the other date components, as ISO 8601-2 and java.time.Period allow.
var designators = []designator{
	{'Y', false, "years"},
	{'M', false, "months"},
	{'W', false, "weeks"},
	{'D', false, "days"},
	{'H', true, "hours"},
	{'M', true, "minutes"},
	{'S', true, "seconds"},
}

// ParsePeriod parses an ISO 8601 duration strictly: an uppercase P, then
// whole, non-negative numbers each followed by its designator in the order
// Y, M, W, D, T, H, M, S, every designator at most once, and a total greater
// than zero. Fractions ("P1.5Y"), signs ("-P1D"), lowercase letters, empty
// parts ("P", "PT", "P1DT") and zero durations ("P0D") are refused with an
// error that wraps ErrInvalidPeriod and says why.
func ParsePeriod(s string) (Period, error) {
	fail := func(format string, args ...any) (Period, error) {
		return Period{}, fmt.Errorf("%w %q: %s", ErrInvalidPeriod, s, fmt.Sprintf(format, args...))
	}

	if s == "" {
		return fail("empty duration")
	}
	switch s[0] {
	case 'P':
	case 'p':
		return fail("must start with an uppercase P")
	case '-', '+':
		return fail("signed durations are not supported; write a positive duration like P30D")
	default:
		return fail("must start with P, as in P7Y or PT12H")
	}
	if len(s) == 1 {
		return fail("empty duration: no components after P")
	}

	var (
		p         Period
		fields    = []*int{&p.Years, &p.Months, &p.Weeks, &p.Days, &p.Hours, &p.Minutes, &p.Seconds}
		next      = 0 // index of the first designator still allowed
		inTime    = false
		timeCount = 0
	)
	for i := 1; i < len(s); {
		c := s[i]
		if c == 'T' {
			if inTime {
				return fail("T appears twice")
			}
			inTime = true
			next = 4
			i++
			continue
		}
		if c == '-' || c == '+' {
			return fail("signed numbers are not supported at %q", s[i:])
		}
		if !isDigit(c) {
			if isDesignatorLetter(upper(c)) {
				return fail("missing number before %c", c)
			}
			return fail("unexpected character %q", c)
		}

		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		digits := s[start:i]
		if i == len(s) {
			return fail("missing designator after %s", digits)
		}
		if s[i] == '.' || s[i] == ',' {
			end := i + 1
			for end < len(s) && isDigit(s[end]) {
				end++
			}
			return fail("fractions such as %s are not supported; use a smaller unit instead", s[start:end])
		}
		if len(strings.TrimLeft(digits, "0")) > maxDigits {
			return fail("number %s is too large (at most %d digits)", digits, maxDigits)
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			return fail("number %s: %v", digits, err)
		}

		letter := s[i]
		idx := -1
		for j := next; j < len(designators); j++ {
			if designators[j].letter == letter && designators[j].timePart == inTime {
				idx = j
				break
			}
		}
		if idx < 0 {
			return fail("%s", misplaced(letter, digits, inTime))
		}
		*fields[idx] = n
		next = idx + 1
		if inTime {
			timeCount++
		}
		i++
	}
	if inTime && timeCount == 0 {
		return fail("empty time part: no components after T")
	}
	if p.timeSeconds() > int64(maxDurationSeconds) {
		return fail("time part is too long; move whole days into the date part")
	}
	if p == (Period{}) {
		return fail("duration must be greater than zero")
	}
	return p, nil
}

// maxDurationSeconds is the longest time part AddTo can apply with
// time.Time.Add without overflowing time.Duration.
const maxDurationSeconds = int64(1<<63-1) / int64(time.Second)

// misplaced explains why letter is not allowed where it was found.
func misplaced(letter byte, digits string, inTime bool) string {
	switch {
	case !isDesignatorLetter(letter) && isDesignatorLetter(upper(letter)):
		return fmt.Sprintf("designator %c after %s must be uppercase", letter, digits)
	case !isDesignatorLetter(letter):
		return fmt.Sprintf("unknown designator %q after %s; use Y, M, W, D, then T and H, M, S", letter, digits)
	case !inTime && (letter == 'H' || letter == 'S'):
		return fmt.Sprintf("%c after %s belongs to the time part and needs a T before it, as in PT%s%c", letter, digits, digits, letter)
	case inTime && (letter == 'Y' || letter == 'W' || letter == 'D'):
		return fmt.Sprintf("%c after %s belongs to the date part and must come before T", letter, digits)
	default:
		return fmt.Sprintf("designator %c after %s is repeated or out of order; the order is Y, M, W, D, T, H, M, S", letter, digits)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// upper returns the uppercase form of an ASCII letter and c itself otherwise.
func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func isDesignatorLetter(c byte) bool {
	return strings.IndexByte("YMWDHS", c) >= 0
}

// timeSeconds is the time part in seconds. Every component has at most nine
// digits, so the sum cannot overflow int64.
func (p Period) timeSeconds() int64 {
	return int64(p.Hours)*3600 + int64(p.Minutes)*60 + int64(p.Seconds)
}

// String returns the canonical form: P, then the non-zero date components in
// the order Y, M, W, D, then T and the non-zero time components H, M, S.
// Components are not carried into larger units (P14D stays P14D and PT90M
// stays PT90M) because a day is not always 24 hours and a month has no fixed
// length. The zero Period, which ParsePeriod never returns, is written P0D.
func (p Period) String() string {
	var b strings.Builder
	b.WriteByte('P')
	write := func(n int, letter byte) {
		if n != 0 {
			b.WriteString(strconv.Itoa(n))
			b.WriteByte(letter)
		}
	}
	write(p.Years, 'Y')
	write(p.Months, 'M')
	write(p.Weeks, 'W')
	write(p.Days, 'D')
	if p.Hours != 0 || p.Minutes != 0 || p.Seconds != 0 {
		b.WriteByte('T')
		write(p.Hours, 'H')
		write(p.Minutes, 'M')
		write(p.Seconds, 'S')
	}
	if b.Len() == 1 {
		return "P0D"
	}
	return b.String()
}

// AddTo returns t moved forward by p. The date part is calendar-aware and
// applied first with t.AddDate in t's location, so P1D keeps the wall-clock
// time across a daylight saving change and P1M from 15 January is 15
// February. Like AddDate it normalises overflowing dates: P1M from 31 January
// is 3 March (2 March in a leap year) and P1Y from 29 February is 1 March. The
// time part is then added as elapsed time with t.Add, so PT24H across a
// daylight saving change lands an hour away from the same wall-clock time.
func (p Period) AddTo(t time.Time) time.Time {
	t = t.AddDate(p.Years, p.Months, p.Weeks*7+p.Days)
	return t.Add(time.Duration(p.timeSeconds()) * time.Second)
}
