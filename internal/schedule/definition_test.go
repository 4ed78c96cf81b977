package schedule

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// validDefinition is a definition every field of which is accepted; each
// test changes one thing.
func validDefinition() Definition {
	return Definition{
		Name:        "Nightly full backup",
		BackupType:  BackupTypeFull,
		BackupScope: BackupScopeTenant,
		Cron:        "0 2 * * *",
		Timezone:    "Europe/Berlin",
		Retention:   "P7Y",
		Window:      &Window{Start: "22:00", End: "04:00"},
		Notify: Notification{
			OnSuccess:  false,
			OnFailure:  true,
			Recipients: []string{"ops@example.com", "dba@example.com"},
		},
		Enabled: true,
	}
}

func recipients(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ops%d@example.com", i)
	}
	return out
}

func TestDefinitionValidate(t *testing.T) {
	t.Run("accepts a complete definition", func(t *testing.T) {
		require.NoError(t, validDefinition().Validate())
	})

	good := []struct {
		name   string
		change func(d *Definition)
	}{
		{"a name with surrounding spaces", func(d *Definition) { d.Name = "  Nightly  " }},
		{"a name of 128 characters that are not ASCII", func(d *Definition) { d.Name = strings.Repeat("é", 128) }},
		{"an incremental backup", func(d *Definition) { d.BackupType = BackupTypeIncremental }},
		{"a differential backup", func(d *Definition) { d.BackupType = BackupTypeDifferential }},
		{"a system backup", func(d *Definition) { d.BackupScope = BackupScopeSystem }},
		{"a schema backup with a schema name", func(d *Definition) {
			d.BackupScope, d.SchemaName = BackupScopeSchema, "billing_2026$"
		}},
		{"a schema name of 63 characters", func(d *Definition) {
			d.BackupScope, d.SchemaName = BackupScopeSchema, "_"+strings.Repeat("a", 62)
		}},
		{"a descriptor instead of five fields", func(d *Definition) { d.Cron = "@daily" }},
		{"the UTC zone", func(d *Definition) { d.Timezone = "UTC" }},
		{"the New York zone", func(d *Definition) { d.Timezone = "America/New_York" }},
		{"a retention in days and hours", func(d *Definition) { d.Retention = "P30DT12H" }},
		{"no execution window", func(d *Definition) { d.Window = nil }},
		{"a window within one day", func(d *Definition) { d.Window = &Window{Start: "01:00", End: "03:00"} }},
		{"a six-hourly cron whose 06:00 fire falls in a 01:00-07:00 window", func(d *Definition) {
			d.Cron, d.Window = "0 */6 * * *", &Window{Start: "01:00", End: "07:00"}
		}},
		{"no recipients when no notification is asked for", func(d *Definition) {
			d.Notify = Notification{}
		}},
		{"fifty recipients", func(d *Definition) { d.Notify.Recipients = recipients(50) }},
		{"recipients with plus and subdomain addresses", func(d *Definition) {
			d.Notify.Recipients = []string{"ops+backup@mail.example.com", "o.n-e@example.co.uk"}
		}},
		{"a disabled schedule", func(d *Definition) { d.Enabled = false }},
	}
	for _, tt := range good {
		t.Run("accepts "+tt.name, func(t *testing.T) {
			d := validDefinition()
			tt.change(&d)
			require.NoError(t, d.Validate())
		})
	}

	bad := []struct {
		name    string
		change  func(d *Definition)
		field   string
		message string
	}{
		{"an empty name", func(d *Definition) { d.Name = "" }, "scheduleName", "required"},
		{"a name of only spaces", func(d *Definition) { d.Name = "   " }, "scheduleName", "required"},
		{"a name of 129 characters", func(d *Definition) { d.Name = strings.Repeat("a", 129) },
			"scheduleName", "at most 128 characters, found 129"},
		{"a name with a tab", func(d *Definition) { d.Name = "Nightly\tfull" }, "scheduleName", "control characters"},
		{"a name with a trailing line break", func(d *Definition) { d.Name = "Nightly\n" }, "scheduleName", "control characters"},
		{"a name that is not UTF-8", func(d *Definition) { d.Name = "Nightly \xff" }, "scheduleName", "valid UTF-8"},

		{"a missing backup type", func(d *Definition) { d.BackupType = "" }, "backupType", "required; one of FULL, INCREMENTAL, DIFFERENTIAL"},
		{"a lowercase backup type", func(d *Definition) { d.BackupType = "full" }, "backupType", `"full" is not one of`},
		{"an unknown backup type", func(d *Definition) { d.BackupType = "SNAPSHOT" }, "backupType", `"SNAPSHOT" is not one of`},

		{"a missing backup scope", func(d *Definition) { d.BackupScope = "" }, "backupScope", "required; one of SYSTEM, TENANT, SCHEMA"},
		{"an unknown backup scope", func(d *Definition) { d.BackupScope = "DATABASE" }, "backupScope", `"DATABASE" is not one of`},

		{"a schema backup without a schema name", func(d *Definition) { d.BackupScope = BackupScopeSchema },
			"schemaName", "required when backupScope is SCHEMA"},
		{"a schema name on a tenant backup", func(d *Definition) { d.SchemaName = "public" },
			"schemaName", "must be empty unless backupScope is SCHEMA"},
		{"a schema name starting with a digit", func(d *Definition) { d.BackupScope, d.SchemaName = BackupScopeSchema, "1billing" },
			"schemaName", "not a schema identifier"},
		{"a schema name with a hyphen", func(d *Definition) { d.BackupScope, d.SchemaName = BackupScopeSchema, "bill-ing" },
			"schemaName", "not a schema identifier"},
		{"a quoted schema name", func(d *Definition) { d.BackupScope, d.SchemaName = BackupScopeSchema, `"Billing"` },
			"schemaName", "not a schema identifier"},
		{"a schema name of 64 characters", func(d *Definition) {
			d.BackupScope, d.SchemaName = BackupScopeSchema, strings.Repeat("a", 64)
		}, "schemaName", "not a schema identifier"},

		{"a missing cron expression", func(d *Definition) { d.Cron = "" }, "cronExpression", "required; expected 5 fields"},
		{"a cron expression with seconds", func(d *Definition) { d.Cron = "0 0 2 * * *" }, "cronExpression", "seconds field is not supported"},
		{"a cron expression with its own zone", func(d *Definition) { d.Cron = "CRON_TZ=UTC 0 2 * * *" }, "cronExpression", "timezone field sets the zone"},
		{"an @every interval", func(d *Definition) { d.Cron = "@every 6h" }, "cronExpression", "@every intervals are not supported"},
		{"an hour out of range", func(d *Definition) { d.Cron = "0 25 * * *" }, "cronExpression", `hour field "25"`},

		{"a missing time zone", func(d *Definition) { d.Timezone = "" }, "timezone", "required"},
		{"the server's local zone", func(d *Definition) { d.Timezone = "Local" }, "timezone", "local zone is not allowed"},
		{"an unknown time zone", func(d *Definition) { d.Timezone = "Europe/Atlantis" }, "timezone", "not a known IANA time zone"},

		{"a missing retention period", func(d *Definition) { d.Retention = "" }, "retentionPeriod", "required"},
		{"a retention period with no components", func(d *Definition) { d.Retention = "P" }, "retentionPeriod", "empty duration"},
		{"a retention period without a designator", func(d *Definition) { d.Retention = "P5" }, "retentionPeriod", "missing designator after 5"},
		{"a retention period in words", func(d *Definition) { d.Retention = "7 years" }, "retentionPeriod", "must start with P"},

		{"a window start without a colon", func(d *Definition) { d.Window.Start = "2200" }, "executionWindow.startTime", "HH:mm"},
		{"a window start of 24:00", func(d *Definition) { d.Window.Start = "24:00" }, "executionWindow.startTime", "between 00:00 and 23:59"},
		{"a window end with one hour digit", func(d *Definition) { d.Window.End = "4:00" }, "executionWindow.endTime", "HH:mm"},
		{"a window end of minute 60", func(d *Definition) { d.Window.End = "04:60" }, "executionWindow.endTime", "between 00:00 and 23:59"},
		{"a window that starts where it ends", func(d *Definition) { d.Window = &Window{Start: "02:00", End: "02:00"} },
			"executionWindow", "they must differ"},
		{"a noon cron with a night window", func(d *Definition) { d.Cron = "0 12 * * *" },
			"executionWindow", `cron expression "0 12 * * *" never fires between 22:00 and 04:00`},
		{"a six-hourly cron with a 01:00-06:00 window", func(d *Definition) {
			d.Cron, d.Window = "0 */6 * * *", &Window{Start: "01:00", End: "06:00"}
		}, "executionWindow", "never fires between 01:00 and 06:00"},

		{"notification on failure without recipients", func(d *Definition) { d.Notify.Recipients = nil },
			"notificationSettings.recipients", "required when onSuccess or onFailure is true"},
		{"notification on success without recipients", func(d *Definition) {
			d.Notify = Notification{OnSuccess: true, Recipients: []string{}}
		}, "notificationSettings.recipients", "required when onSuccess or onFailure is true"},
		{"fifty-one recipients", func(d *Definition) { d.Notify.Recipients = recipients(51) },
			"notificationSettings.recipients", "at most 50 recipients, found 51"},
		{"a recipient with a display name", func(d *Definition) { d.Notify.Recipients[1] = "DBA <dba@example.com>" },
			"notificationSettings.recipients[1]", "not a bare e-mail address"},
		{"a recipient in angle brackets", func(d *Definition) { d.Notify.Recipients[1] = "<dba@example.com>" },
			"notificationSettings.recipients[1]", "not a bare e-mail address"},
		{"a recipient with a leading space", func(d *Definition) { d.Notify.Recipients[0] = " ops@example.com" },
			"notificationSettings.recipients[0]", "not a bare e-mail address"},
		{"a recipient without a domain", func(d *Definition) { d.Notify.Recipients[1] = "dba" },
			"notificationSettings.recipients[1]", "not a bare e-mail address"},
		{"two addresses in one recipient", func(d *Definition) { d.Notify.Recipients[1] = "a@example.com, b@example.com" },
			"notificationSettings.recipients[1]", "not a bare e-mail address"},
		{"an empty recipient", func(d *Definition) { d.Notify.Recipients[1] = "" },
			"notificationSettings.recipients[1]", "must not be empty"},
		{"a recipient repeated in other letter case", func(d *Definition) { d.Notify.Recipients[1] = "OPS@Example.com" },
			"notificationSettings.recipients[1]", `"OPS@Example.com" repeats notificationSettings.recipients[0]`},
	}
	for _, tt := range bad {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			d := validDefinition()
			tt.change(&d)
			err := d.Validate()
			require.Error(t, err)

			var verr ValidationError
			require.True(t, errors.As(err, &verr), "Validate must return a ValidationError")
			require.Len(t, verr, 1, "only %s should be refused: %v", tt.field, verr)
			require.Equal(t, tt.field, verr[0].Field)
			require.Contains(t, verr[0].Message, tt.message)
		})
	}

	t.Run("lists every refusal of a definition, not just the first", func(t *testing.T) {
		d := Definition{
			Name:        "",
			BackupType:  "WEEKLY",
			BackupScope: BackupScopeSchema,
			Cron:        "* * * * * *",
			Timezone:    "Local",
			Retention:   "P0D",
			Window:      &Window{Start: "25:00", End: "4"},
			Notify: Notification{
				OnSuccess:  true,
				Recipients: []string{"ok@example.com", "Not An Address", "OK@example.com"},
			},
		}
		err := d.Validate()
		var verr ValidationError
		require.True(t, errors.As(err, &verr))

		fields := make([]string, len(verr))
		for i, e := range verr {
			fields[i] = e.Field
		}
		require.Equal(t, []string{
			"scheduleName",
			"backupType",
			"schemaName",
			"cronExpression",
			"timezone",
			"retentionPeriod",
			"executionWindow.startTime",
			"executionWindow.endTime",
			"notificationSettings.recipients[1]",
			"notificationSettings.recipients[2]",
		}, fields)
		require.Contains(t, err.Error(), "scheduleName: required; backupType: ")
	})

	t.Run("checks the window against the cron even when the time zone is refused", func(t *testing.T) {
		d := validDefinition()
		d.Cron, d.Timezone = "0 12 * * *", ""
		var verr ValidationError
		require.True(t, errors.As(d.Validate(), &verr))
		require.Len(t, verr, 2)
		require.Equal(t, "timezone", verr[0].Field)
		require.Equal(t, "executionWindow", verr[1].Field)
	})

	t.Run("checks the window against the cron only when both are valid", func(t *testing.T) {
		d := validDefinition()
		d.Cron = "0 12 * * * *"
		var verr ValidationError
		require.True(t, errors.As(d.Validate(), &verr))
		require.Len(t, verr, 1)
		require.Equal(t, "cronExpression", verr[0].Field)
	})
}

func TestValidationError(t *testing.T) {
	t.Run("joins its refusals into one message", func(t *testing.T) {
		err := ValidationError{
			{Field: "scheduleName", Message: "required"},
			{Field: "timezone", Message: "required"},
		}
		require.Equal(t, "invalid schedule: scheduleName: required; timezone: required", err.Error())
	})
}
