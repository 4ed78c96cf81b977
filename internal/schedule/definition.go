package schedule

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/onevault/readiness/internal/retention"
)

// Backup types a schedule may run.
const (
	BackupTypeFull         = "FULL"
	BackupTypeIncremental  = "INCREMENTAL"
	BackupTypeDifferential = "DIFFERENTIAL"
)

// Backup scopes a schedule may cover.
const (
	BackupScopeSystem = "SYSTEM"
	BackupScopeTenant = "TENANT"
	BackupScopeSchema = "SCHEMA"
)

const (
	// MaxNameLength is the longest schedule name, in characters after
	// trimming surrounding white space.
	MaxNameLength = 128
	// MaxRecipients is the most notification recipients one schedule may have.
	MaxRecipients = 50
)

// schemaNamePattern matches an unquoted PostgreSQL identifier of at most 63
// bytes (NAMEDATALEN - 1), the only schema names a SCHEMA backup accepts.
var schemaNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// Notification says when to send a report of a scheduled backup, and to whom.
type Notification struct {
	OnSuccess, OnFailure bool
	Recipients           []string
}

// Definition is a backup schedule as a user defines it.
type Definition struct {
	Name        string
	BackupType  string // FULL, INCREMENTAL or DIFFERENTIAL.
	BackupScope string // SYSTEM, TENANT or SCHEMA.
	SchemaName  string // Required if and only if BackupScope is SCHEMA.
	Cron        string // See ParseCron.
	Timezone    string // An IANA zone name; see LoadLocation.
	Retention   string // An ISO 8601 duration; see retention.ParsePeriod.
	Window      *Window
	Notify      Notification
	Enabled     bool
}

// FieldError is one refusal of a definition: the request field, by the JSON
// name the API shows (scheduleName, executionWindow.startTime,
// notificationSettings.recipients[2], ...), and why it was refused.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error returns "field: message".
func (e FieldError) Error() string {
	return e.Field + ": " + e.Message
}

// ValidationError lists every refusal of one definition, not just the first,
// so a user can fix a request in one round trip. Find it with errors.As.
type ValidationError []FieldError

// Error joins the refusals with "; ".
func (v ValidationError) Error() string {
	parts := make([]string, len(v))
	for i, e := range v {
		parts[i] = e.Error()
	}
	return "invalid schedule: " + strings.Join(parts, "; ")
}

// Validate checks every field of d and returns nil or a ValidationError that
// lists all refusals. Besides each field's own rules it refuses a cron
// expression that never fires inside the execution window, with field
// executionWindow; that check looks ahead from now, as gocron does when it
// accepts a cron job.
func (d Definition) Validate() error {
	var errs ValidationError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	if msg := checkName(d.Name); msg != "" {
		add("scheduleName", "%s", msg)
	}

	switch d.BackupType {
	case BackupTypeFull, BackupTypeIncremental, BackupTypeDifferential:
	case "":
		add("backupType", "required; one of FULL, INCREMENTAL, DIFFERENTIAL")
	default:
		add("backupType", "%q is not one of FULL, INCREMENTAL, DIFFERENTIAL", d.BackupType)
	}

	scopeKnown := true
	switch d.BackupScope {
	case BackupScopeSystem, BackupScopeTenant, BackupScopeSchema:
	case "":
		scopeKnown = false
		add("backupScope", "required; one of SYSTEM, TENANT, SCHEMA")
	default:
		scopeKnown = false
		add("backupScope", "%q is not one of SYSTEM, TENANT, SCHEMA", d.BackupScope)
	}

	switch {
	case d.BackupScope == BackupScopeSchema && d.SchemaName == "":
		add("schemaName", "required when backupScope is SCHEMA")
	case scopeKnown && d.BackupScope != BackupScopeSchema && d.SchemaName != "":
		add("schemaName", "must be empty unless backupScope is SCHEMA")
	case d.SchemaName != "" && !schemaNamePattern.MatchString(d.SchemaName):
		add("schemaName", "%q is not a schema identifier: a letter or underscore, then up to 62 letters, digits, underscores or dollar signs", d.SchemaName)
	}

	var sched bool
	if d.Cron == "" {
		add("cronExpression", "required; %s", cronForm)
	} else if _, err := ParseCron(d.Cron); err != nil {
		add("cronExpression", "%s", reason(err, ErrInvalidCron))
	} else {
		sched = true
	}

	var loc *time.Location
	if l, err := LoadLocation(d.Timezone); err != nil {
		add("timezone", "%s", reason(err, ErrInvalidTimezone))
	} else {
		loc = l
	}

	if d.Retention == "" {
		add("retentionPeriod", "required; an ISO 8601 duration such as P7Y, P30D or P1Y6M")
	} else if _, err := retention.ParsePeriod(d.Retention); err != nil {
		add("retentionPeriod", "%s", reason(err, retention.ErrInvalidPeriod))
	}

	if d.Window != nil {
		start, startErr := parseClock(d.Window.Start)
		if startErr != nil {
			add("executionWindow.startTime", "%v", startErr)
		}
		end, endErr := parseClock(d.Window.End)
		if endErr != nil {
			add("executionWindow.endTime", "%v", endErr)
		}
		switch {
		case startErr != nil || endErr != nil:
		case start == end:
			add("executionWindow", "startTime and endTime are both %s; they must differ (use no window to allow any time)", d.Window.Start)
		case sched:
			// Fires are wall-clock times, so whether any falls inside the
			// window hardly depends on the zone; check in UTC when the zone
			// is refused, so that this refusal is not hidden behind that one.
			zone := loc
			if zone == nil {
				zone = time.UTC
			}
			runs, err := NextRuns(d.Cron, zone, d.Window, time.Now(), 1)
			if err == nil && len(runs) == 0 {
				add("executionWindow", "cron expression %q never fires between %s and %s", d.Cron, d.Window.Start, d.Window.End)
			}
		}
	}

	checkNotification(d.Notify, add)

	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkName returns why name is refused, or "".
func checkName(name string) string {
	if !utf8.ValidString(name) {
		return "must be valid UTF-8"
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "must not contain control characters such as tabs or line breaks"
	}
	n := utf8.RuneCountInString(strings.TrimSpace(name))
	switch {
	case n == 0:
		return "required"
	case n > MaxNameLength:
		return fmt.Sprintf("must be at most %d characters, found %d", MaxNameLength, n)
	}
	return ""
}

// checkNotification refuses missing, malformed, duplicated or too many
// recipients.
func checkNotification(n Notification, add func(field, format string, args ...any)) {
	const field = "notificationSettings.recipients"
	if len(n.Recipients) == 0 {
		if n.OnSuccess || n.OnFailure {
			add(field, "required when onSuccess or onFailure is true")
		}
		return
	}
	if len(n.Recipients) > MaxRecipients {
		add(field, "at most %d recipients, found %d", MaxRecipients, len(n.Recipients))
	}
	seen := make(map[string]int, len(n.Recipients))
	for i, r := range n.Recipients {
		itemField := fmt.Sprintf("%s[%d]", field, i)
		if msg := checkEmail(r); msg != "" {
			add(itemField, "%s", msg)
			continue
		}
		key := strings.ToLower(r)
		if first, ok := seen[key]; ok {
			add(itemField, "%q repeats %s[%d]", r, field, first)
			continue
		}
		seen[key] = i
	}
}

// checkEmail returns why addr is refused, or "". Only a bare address is
// accepted: net/mail must parse it and give back exactly the input, which
// rules out display names, angle brackets, comments and surrounding spaces.
func checkEmail(addr string) string {
	if addr == "" {
		return "must not be empty"
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Address != addr {
		return fmt.Sprintf("%q is not a bare e-mail address such as ops@example.com (no display name or angle brackets)", addr)
	}
	return ""
}

// reason strips the sentinel prefix from a package error, which the field
// name already conveys, and leaves the explanation.
func reason(err, sentinel error) string {
	msg := err.Error()
	if errors.Is(err, sentinel) {
		msg = strings.TrimPrefix(msg, sentinel.Error())
		msg = strings.TrimLeft(msg, " :")
	}
	return msg
}
