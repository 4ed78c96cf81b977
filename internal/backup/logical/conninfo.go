package logical

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgxOnlyKeys are connection settings that pgx understands and libpq refuses.
var pgxOnlyKeys = map[string]bool{
	"statement_cache_capacity":   true,
	"description_cache_capacity": true,
	"default_query_exec_mode":    true,
	"min_read_buffer_size":       true,
}

func isPgxOnly(key string) bool {
	return pgxOnlyKeys[key] || strings.HasPrefix(key, "pool_")
}

// libpqConnString turns a pgx connection string (URL or keyword/value) into one for libpq
// clients, without the password, which it returns apart so that it can travel in
// PGPASSWORD instead of on a command line. Settings that only pgx knows are dropped.
func libpqConnString(connString string) (dsn, password string, err error) {
	if _, err := pgconn.ParseConfig(connString); err != nil {
		return "", "", fmt.Errorf("logical: connection string: %w", err)
	}
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", "", fmt.Errorf("logical: connection string: %w", err)
		}
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				password = p
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if p := q.Get("password"); p != "" {
			password = p
		}
		q.Del("password")
		for key := range q {
			if isPgxOnly(key) {
				q.Del(key)
			}
		}
		u.RawQuery = q.Encode()
		return u.String(), password, nil
	}
	pairs, err := parseKeywordValue(connString)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	for _, kv := range pairs {
		switch {
		case kv[0] == "password":
			password = kv[1]
		case isPgxOnly(kv[0]):
		default:
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(kv[0])
			b.WriteString("='")
			b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[1]))
			b.WriteByte('\'')
		}
	}
	return b.String(), password, nil
}

// parseKeywordValue parses libpq's keyword/value connection strings: key = value pairs
// separated by white space, where a value is either single-quoted or runs to the next white
// space, and a backslash escapes the next character in both forms.
func parseKeywordValue(s string) ([][2]string, error) {
	var pairs [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(rune(s[i])) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !unicode.IsSpace(rune(s[i])) {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("logical: connection string: missing \"=\" after %q", key)
		}
		i++
		skipSpace()
		var value strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("logical: connection string: unterminated quoted value of %q", key)
				}
				if s[i] == '\\' && i+1 < len(s) {
					value.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '\'' {
					i++
					break
				}
				value.WriteByte(s[i])
				i++
			}
		} else {
			for i < len(s) && !unicode.IsSpace(rune(s[i])) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				value.WriteByte(s[i])
				i++
			}
		}
		pairs = append(pairs, [2]string{key, value.String()})
	}
}
