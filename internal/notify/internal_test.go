package notify

import (
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQueueID(t *testing.T) {
	t.Run("the queue id is read from the replies of common servers", func(t *testing.T) {
		for reply, want := range map[string]string{
			"2.0.0 Ok: queued as 4XyzAbC12":              "4XyzAbC12", // Postfix
			"Ok: queued as 9sW2kQ3TtU8u@mailpit":         "9sW2kQ3TtU8u@mailpit",
			"OK id=1tAbCd-000123-4F":                     "1tAbCd-000123-4F", // Exim
			"2.0.0 Ok: queued":                           "",                 // go-smtp
			"2.0.0 OK  1700000000 a1-20020a.123 - gsmtp": "",
		} {
			require.Equal(t, want, queueID(reply), reply)
		}
	})
}

func TestHumanBytes(t *testing.T) {
	t.Run("sizes use decimal units with one decimal", func(t *testing.T) {
		for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 999_999: "1.0 MB",
			1_234_567_890: "1.2 GB", 5_500_000_000_000: "5.5 TB"} {
			require.Equal(t, want, humanBytes(n), "%d", n)
		}
	})
}

func TestCompose(t *testing.T) {
	t.Run("a long subject is folded at 78 characters and unfolds to the same text", func(t *testing.T) {
		subject := strings.Repeat("word ", 40) + "end"
		env, err := compose("a@example.com", Message{To: []string{"b@example.com"}, Subject: subject, Text: "t"}, time.Now())
		require.NoError(t, err)
		for _, line := range strings.Split(string(env.data), "\r\n") {
			require.LessOrEqual(t, len(line), 78)
		}
		m, err := mail.ReadMessage(strings.NewReader(string(env.data)))
		require.NoError(t, err)
		require.Equal(t, subject, m.Header.Get("Subject"))
	})
}
