package demodata

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalidSize is returned by ParseSize for a size it cannot read.
var ErrInvalidSize = errors.New("invalid size")

// sizeUnits maps a lower-cased suffix to its multiplier. As in GNU tools, KB, MB, GB and TB
// are powers of 1000, while KiB, MiB, GiB, TiB and the bare letters K, M, G, T are powers
// of 1024.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseSize reads a size such as "2GB", "500MB", "64MiB", "1.5G" or "4096" (bytes). The
// suffix is case-insensitive and may follow a space; KB/MB/GB/TB are decimal, K/M/G/T and
// KiB/MiB/GiB/TiB binary. The result is rounded to whole bytes and must be positive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%w %q: want a number and an optional unit B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, K, M, G or T", ErrInvalidSize, s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrInvalidSize, s, err)
	}
	bytes := math.Round(v * mult)
	if bytes <= 0 || bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%w %q: must be between 1 byte and 8 EiB", ErrInvalidSize, s)
	}
	return int64(bytes), nil
}
