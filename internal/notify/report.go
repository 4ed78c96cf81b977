package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// BackupReport is what a schedule notification says: what ran, the result, the size, the
// duration and, on failure, the reason.
type BackupReport struct {
	Tenant       string
	ScheduleName string
	ScheduleID   string
	BackupID     string
	BackupType   string // FULL, DIFFERENTIAL, INCREMENTAL, ...
	BackupScope  string // TENANT, SYSTEM, ...
	Status       string // COMPLETED, FAILED, ...
	// SizeBytes is the size of the data backed up; StoredSizeBytes what it takes in storage
	// after compression and encryption.
	SizeBytes       int64
	StoredSizeBytes int64
	Duration        time.Duration
	StartedAt       time.Time
	CompletedAt     time.Time
	ErrorMessage    string
	Attempts        int
}

// subjectReasonLimit keeps a failure's subject readable in a mail client's list; the body
// has the whole reason.
const subjectReasonLimit = 120

// Failed reports whether the report is about a failure: status FAILED, or any status that
// carries an error message.
func (r BackupReport) Failed() bool {
	return strings.EqualFold(r.Status, "FAILED") || strings.TrimSpace(r.ErrorMessage) != ""
}

// Message renders the report as an e-mail to the given recipients. The subject reads like
// "[readiness] acme: nightly full FULL TENANT backup COMPLETED (1.2 GB in 3m4s)" or
// "[readiness] acme: nightly full FULL TENANT backup FAILED: <first line of the reason>", and
// the body lists every field, sizes both human-readable and in bytes.
func (r BackupReport) Message(to []string) Message {
	return Message{To: to, Subject: r.subject(), Text: r.text()}
}

func (r BackupReport) subject() string {
	var b strings.Builder
	b.WriteString("[readiness] ")
	if r.Tenant != "" {
		b.WriteString(r.Tenant)
		b.WriteString(": ")
	}
	for _, part := range []string{r.ScheduleName, r.BackupType, r.BackupScope} {
		if part = strings.TrimSpace(part); part != "" {
			b.WriteString(part)
			b.WriteString(" ")
		}
	}
	b.WriteString("backup ")
	b.WriteString(orDash(r.Status))
	if r.Failed() {
		if reason := firstLine(r.ErrorMessage); reason != "" {
			b.WriteString(": ")
			b.WriteString(truncate(reason, subjectReasonLimit))
		}
		return b.String()
	}
	fmt.Fprintf(&b, " (%s in %s)", humanBytes(r.SizeBytes), humanDuration(r.Duration))
	return b.String()
}

func (r BackupReport) text() string {
	var b strings.Builder
	what := strings.TrimSpace(strings.Join(nonEmpty(r.BackupType, r.BackupScope), " ") + " backup")
	if r.ScheduleName != "" {
		fmt.Fprintf(&b, "The %s of schedule %q", what, r.ScheduleName)
	} else {
		fmt.Fprintf(&b, "The %s", what)
	}
	if r.Tenant != "" {
		fmt.Fprintf(&b, " for tenant %s", r.Tenant)
	}
	if r.Failed() {
		fmt.Fprintf(&b, " ended %s", orDash(r.Status))
		if r.Attempts > 1 {
			fmt.Fprintf(&b, " after %d attempts", r.Attempts)
		}
		b.WriteString(".\n\n")
	} else {
		fmt.Fprintf(&b, " ended %s: %s in %s.\n\n", orDash(r.Status), humanBytes(r.SizeBytes), humanDuration(r.Duration))
	}

	field := func(name, value string) { fmt.Fprintf(&b, "%-13s %s\n", name+":", orDash(value)) }
	field("Tenant", r.Tenant)
	field("Schedule", r.ScheduleName)
	field("Schedule ID", r.ScheduleID)
	field("Backup ID", r.BackupID)
	field("Type", r.BackupType)
	field("Scope", r.BackupScope)
	field("Status", r.Status)
	field("Size", sizeField(r.SizeBytes))
	field("Stored size", sizeField(r.StoredSizeBytes))
	field("Duration", humanDuration(r.Duration))
	field("Started", timeField(r.StartedAt))
	field("Completed", timeField(r.CompletedAt))
	field("Attempts", strconv.Itoa(r.Attempts))
	if r.Failed() {
		reason := strings.TrimSpace(strings.ReplaceAll(r.ErrorMessage, "\r\n", "\n"))
		if reason == "" {
			reason = "(no reason was recorded)"
		}
		// Continuation lines are indented so a multi-line reason stays one field.
		field("Reason", strings.ReplaceAll(reason, "\n", "\n              "))
	}
	b.WriteString("\n-- \nSent by One Vault Readiness for a backup schedule's notification settings.\n")
	return b.String()
}

// humanBytes formats a byte count in decimal (SI) units: 1234567890 is "1.2 GB".
func humanBytes(n int64) string {
	if n < 1000 && n > -1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	i := -1
	for (v >= 999.95 || v <= -999.95) && i < len(units)-1 {
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// humanDuration rounds a duration for people: whole seconds from a second up ("3m4s"),
// milliseconds below.
func humanDuration(d time.Duration) string {
	if d >= time.Second || d <= -time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

func sizeField(n int64) string {
	return fmt.Sprintf("%s (%d bytes)", humanBytes(n), n)
}

func timeField(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func nonEmpty(values ...string) []string {
	var out []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// truncate shortens s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return strings.TrimSpace(string(runes[:n-1])) + "…"
}
