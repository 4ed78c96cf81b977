package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/stretchr/testify/require"

	"github.com/onevault/readiness/gen/client"
)

func ptr[T any](v T) *T { return &v }

func nightly() client.ScheduleCreateRequest {
	return client.ScheduleCreateRequest{
		ScheduleName:    "nightly full",
		BackupType:      client.BackupTypeFULL,
		CronExpression:  "30 2 * * *",
		Timezone:        "Europe/Berlin",
		RetentionPeriod: ptr("P30D"),
		ExecutionWindow: &client.ExecutionWindow{StartTime: "01:00", EndTime: "05:00"},
		NotificationSettings: &client.NotificationSettings{OnFailure: true,
			Recipients: &[]openapi_types.Email{"dba@acme.example"}},
	}
}

func (e *env) createSchedule(body client.ScheduleCreateRequest, who client.RequestEditorFn) client.Schedule {
	e.t.Helper()
	resp, err := e.client.CreateScheduleWithResponse(context.Background(), &client.CreateScheduleParams{XTenantID: "acme"}, body, who)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusCreated, resp.StatusCode(), string(resp.Body))
	return resp.JSON201.Data
}

func TestScheduleLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	acme := &client.GetScheduleParams{XTenantID: "acme"}
	admin := acmeAdmin(t)

	created := e.createSchedule(nightly(), admin)

	t.Run("a created schedule shows its definition, version 1 and who made it", func(t *testing.T) {
		require.Equal(t, "nightly full", created.ScheduleName)
		require.Equal(t, client.BackupScopeTENANT, created.BackupScope, "backupScope defaults to TENANT")
		require.Equal(t, "P30D", created.RetentionPeriod)
		require.True(t, created.Enabled, "enabled defaults to true")
		require.Equal(t, 1, created.Version)
		require.Equal(t, "alice", created.CreatedBy)
		require.Nil(t, created.LastRunAt)
	})

	t.Run("its next three fire times are in its own zone, inside its window", func(t *testing.T) {
		require.Len(t, created.NextRunTimes, 3)
		berlin, err := time.LoadLocation("Europe/Berlin")
		require.NoError(t, err)
		prev := time.Now()
		for _, fire := range created.NextRunTimes {
			local := fire.In(berlin)
			require.Equal(t, 2, local.Hour())
			require.Equal(t, 30, local.Minute())
			require.True(t, fire.After(prev))
			prev = fire
		}
		require.Equal(t, created.NextRunTimes[0], *created.NextRunAt)
		// The wire format carries the zone's offset, not UTC.
		resp, err := e.client.GetScheduleWithResponse(ctx, created.ScheduleId, acme, admin)
		require.NoError(t, err)
		var raw struct {
			Data struct {
				NextRunTimes []string `json:"nextRunTimes"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(resp.Body, &raw))
		for _, s := range raw.Data.NextRunTimes {
			require.True(t, strings.HasSuffix(s, "+01:00") || strings.HasSuffix(s, "+02:00"), s)
		}
	})

	t.Run("it is listed and can be read back", func(t *testing.T) {
		list, err := e.client.ListSchedulesWithResponse(ctx, &client.ListSchedulesParams{XTenantID: "acme"}, admin)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, list.StatusCode())
		require.Len(t, list.JSON200.Data.Schedules, 1)
		require.Equal(t, created.ScheduleId, list.JSON200.Data.Schedules[0].ScheduleId)
		require.Equal(t, client.Pagination{Page: 1, PageSize: 20, TotalItems: 1, TotalPages: 1}, list.JSON200.Data.Pagination)

		got, err := e.client.GetScheduleWithResponse(ctx, created.ScheduleId, acme, admin)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, got.StatusCode())
		require.Equal(t, created.CronExpression, got.JSON200.Data.CronExpression)
	})

	t.Run("a partial update keeps absent fields and makes a new version", func(t *testing.T) {
		resp, err := e.client.UpdateScheduleWithResponse(ctx, created.ScheduleId, &client.UpdateScheduleParams{XTenantID: "acme"},
			client.ScheduleUpdateRequest{CronExpression: ptr("0 3 * * *")}, as(token(t, "bob", []string{"acme"}, "operator")))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode(), string(resp.Body))
		s := resp.JSON200.Data
		require.Equal(t, "0 3 * * *", s.CronExpression)
		require.Equal(t, "nightly full", s.ScheduleName)
		require.Equal(t, &client.ExecutionWindow{StartTime: "01:00", EndTime: "05:00"}, s.ExecutionWindow)
		require.Equal(t, 2, s.Version)
		require.Equal(t, "bob", s.UpdatedBy)
		require.Equal(t, "alice", s.CreatedBy)
	})

	t.Run("executionWindow null removes the window and disabling stops the fires", func(t *testing.T) {
		status, body, _ := e.raw(http.MethodPut, "/api/v1/schedule/"+created.ScheduleId.String(), "acme",
			token(t, "alice", []string{"acme"}, "admin"), `{"executionWindow": null, "enabled": false}`)
		require.Equal(t, http.StatusOK, status, string(body))
		var resp client.ScheduleResponse
		require.NoError(t, json.Unmarshal(body, &resp))
		require.Nil(t, resp.Data.ExecutionWindow)
		require.False(t, resp.Data.Enabled)
		require.Empty(t, resp.Data.NextRunTimes)
		require.Nil(t, resp.Data.NextRunAt)
		require.Equal(t, 3, resp.Data.Version)
	})

	t.Run("the enabled filter selects", func(t *testing.T) {
		list, err := e.client.ListSchedulesWithResponse(ctx, &client.ListSchedulesParams{XTenantID: "acme", Enabled: ptr(true)}, admin)
		require.NoError(t, err)
		require.Empty(t, list.JSON200.Data.Schedules)
		list, err = e.client.ListSchedulesWithResponse(ctx, &client.ListSchedulesParams{XTenantID: "acme", Enabled: ptr(false)}, admin)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Data.Schedules, 1)
	})

	t.Run("delete ends it, and its history keeps every version", func(t *testing.T) {
		del, err := e.client.DeleteScheduleWithResponse(ctx, created.ScheduleId, &client.DeleteScheduleParams{XTenantID: "acme"}, admin)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, del.StatusCode(), string(del.Body))
		require.True(t, del.JSON200.Data.Deleted)

		got, err := e.client.GetScheduleWithResponse(ctx, created.ScheduleId, acme, admin)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, got.StatusCode())
		again, err := e.client.DeleteScheduleWithResponse(ctx, created.ScheduleId, &client.DeleteScheduleParams{XTenantID: "acme"}, admin)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, again.StatusCode())

		hist, err := e.client.GetScheduleHistoryWithResponse(ctx, created.ScheduleId, &client.GetScheduleHistoryParams{XTenantID: "acme"}, admin)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, hist.StatusCode(), string(hist.Body))
		var changes []string
		for _, v := range hist.JSON200.Data.Versions {
			changes = append(changes, string(v.Change))
		}
		require.Equal(t, []string{"CREATED", "UPDATED", "UPDATED", "DELETED"}, changes)
		require.Equal(t, "30 2 * * *", hist.JSON200.Data.Versions[0].Definition.CronExpression)
		require.Equal(t, "0 3 * * *", hist.JSON200.Data.Versions[1].Definition.CronExpression)
		require.Equal(t, "bob", hist.JSON200.Data.Versions[1].ChangedBy)
	})
}

func TestSchedulePagination(t *testing.T) {
	e := newEnv(t)
	admin := acmeAdmin(t)
	for i := 0; i < 5; i++ {
		body := nightly()
		body.ScheduleName = "s" + string(rune('a'+i))
		e.createSchedule(body, admin)
	}
	resp, err := e.client.ListSchedulesWithResponse(context.Background(),
		&client.ListSchedulesParams{XTenantID: "acme", Page: ptr(2), PageSize: ptr(2)}, admin)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode())
	var names []string
	for _, s := range resp.JSON200.Data.Schedules {
		names = append(names, s.ScheduleName)
	}
	require.Equal(t, []string{"sc", "sd"}, names)
	require.Equal(t, client.Pagination{Page: 2, PageSize: 2, TotalItems: 5, TotalPages: 3}, resp.JSON200.Data.Pagination)

	status, body, _ := e.raw(http.MethodGet, "/api/v1/schedule/list?pageSize=1000", "acme", token(t, "a", []string{"acme"}, "viewer"), "")
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "pageSize", requireEnvelope(t, body).Error.Details[0].Field)
}

// TestScheduleTenantIsolation: for every schedule operation with an id in its path, tenant
// B's token on tenant A's id answers 404 and changes nothing.
func TestScheduleTenantIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.createSchedule(nightly(), acmeAdmin(t))
	globex := globexAdmin(t)
	versions := func() int {
		return e.count(`SELECT count(*) FROM sat_backup_schedule_definition d JOIN hub_backup_schedule h USING (schedule_hk)
			WHERE h.schedule_bk = $1`, uuid.UUID(s.ScheduleId))
	}

	calls := map[string]func() (int, []byte, error){
		"getSchedule": func() (int, []byte, error) {
			r, err := e.client.GetScheduleWithResponse(ctx, s.ScheduleId, &client.GetScheduleParams{XTenantID: "globex"}, globex)
			return r.StatusCode(), r.Body, err
		},
		"updateSchedule": func() (int, []byte, error) {
			r, err := e.client.UpdateScheduleWithResponse(ctx, s.ScheduleId, &client.UpdateScheduleParams{XTenantID: "globex"},
				client.ScheduleUpdateRequest{Enabled: ptr(false)}, globex)
			return r.StatusCode(), r.Body, err
		},
		"deleteSchedule": func() (int, []byte, error) {
			r, err := e.client.DeleteScheduleWithResponse(ctx, s.ScheduleId, &client.DeleteScheduleParams{XTenantID: "globex"}, globex)
			return r.StatusCode(), r.Body, err
		},
		"getScheduleHistory": func() (int, []byte, error) {
			r, err := e.client.GetScheduleHistoryWithResponse(ctx, s.ScheduleId, &client.GetScheduleHistoryParams{XTenantID: "globex"}, globex)
			return r.StatusCode(), r.Body, err
		},
	}
	for name, call := range calls {
		t.Run(name+" with another tenant's id answers 404 and changes nothing", func(t *testing.T) {
			status, body, err := call()
			require.NoError(t, err)
			require.Equal(t, http.StatusNotFound, status, string(body))
			env := requireEnvelope(t, body)
			require.Equal(t, "NOT_FOUND", env.Error.Code)
			require.NotContains(t, string(body), "nightly", "nothing of the schedule leaks")
			require.Equal(t, 1, versions())
		})
	}

	t.Run("globex's list does not show acme's schedule", func(t *testing.T) {
		r, err := e.client.ListSchedulesWithResponse(ctx, &client.ListSchedulesParams{XTenantID: "globex"}, globex)
		require.NoError(t, err)
		require.Empty(t, r.JSON200.Data.Schedules)
	})

	t.Run("the owner still sees it unchanged", func(t *testing.T) {
		r, err := e.client.GetScheduleWithResponse(ctx, s.ScheduleId, &client.GetScheduleParams{XTenantID: "acme"}, acmeAdmin(t))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.StatusCode())
		require.True(t, r.JSON200.Data.Enabled)
		require.Equal(t, 1, r.JSON200.Data.Version)
	})

	t.Run("an id that is not a uuid is 400 naming scheduleId", func(t *testing.T) {
		status, body, _ := e.raw(http.MethodGet, "/api/v1/schedule/not-a-uuid", "acme", token(t, "a", []string{"acme"}, "admin"), "")
		require.Equal(t, http.StatusBadRequest, status, string(body))
		require.Equal(t, "scheduleId", requireEnvelope(t, body).Error.Details[0].Field)
	})
}

// TestScheduleBadInput: every schedule field refused with 400, naming the field, and nothing stored.
func TestScheduleBadInput(t *testing.T) {
	e := newEnv(t)
	tok := token(t, "alice", []string{"acme"}, "admin")
	valid := map[string]any{
		"scheduleName": "n", "backupType": "FULL", "cronExpression": "0 2 * * *", "timezone": "UTC",
		"retentionPeriod": "P7D", "executionWindow": map[string]any{"startTime": "01:00", "endTime": "05:00"},
		"notificationSettings": map[string]any{"onSuccess": false, "onFailure": true, "recipients": []string{"a@b.example"}},
	}
	with := func(field string, value any) string {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		if value == nil {
			delete(m, field)
		} else {
			m[field] = value
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	window := func(start, end string) map[string]any { return map[string]any{"startTime": start, "endTime": end} }
	notify := func(onFailure bool, recipients ...string) map[string]any {
		return map[string]any{"onSuccess": false, "onFailure": onFailure, "recipients": recipients}
	}

	cases := []struct {
		name, body, field string
	}{
		{"a missing scheduleName", with("scheduleName", nil), "scheduleName"},
		{"an empty scheduleName", with("scheduleName", ""), "scheduleName"},
		{"a scheduleName of 129 characters", with("scheduleName", strings.Repeat("x", 129)), "scheduleName"},
		{"a blank scheduleName", with("scheduleName", "   "), "scheduleName"},
		{"a missing backupType", with("backupType", nil), "backupType"},
		{"an unknown backupType", with("backupType", "WEEKLY"), "backupType"},
		{"an unknown backupScope", with("backupScope", "EVERYTHING"), "backupScope"},
		{"a schemaName on TENANT scope", with("schemaName", "clinical"), "schemaName"},
		{"a schemaName that is not an identifier", with("schemaName", "drop table;"), "schemaName"},
		{"a missing cronExpression", with("cronExpression", nil), "cronExpression"},
		{"a cron with a seconds field", with("cronExpression", "0 0 2 * * *"), "cronExpression"},
		{"a cron minute out of range", with("cronExpression", "61 2 * * *"), "cronExpression"},
		{"a cron of garbage", with("cronExpression", "every night"), "cronExpression"},
		{"a cron with a CRON_TZ prefix", with("cronExpression", "CRON_TZ=Europe/Berlin 0 2 * * *"), "cronExpression"},
		{"a cron that never fires", with("cronExpression", "0 0 30 2 *"), "cronExpression"},
		{"a missing timezone", with("timezone", nil), "timezone"},
		{"an unknown timezone", with("timezone", "Mars/Olympus"), "timezone"},
		{"the Local timezone", with("timezone", "Local"), "timezone"},
		{"a retention that is not ISO 8601", with("retentionPeriod", "7 years"), "retentionPeriod"},
		{"an empty ISO 8601 retention", with("retentionPeriod", "P"), "retentionPeriod"},
		{"a zero retention", with("retentionPeriod", "P0D"), "retentionPeriod"},
		{"a window start that is not HH:mm", with("executionWindow", window("25:00", "05:00")), "executionWindow.startTime"},
		{"a window end that is not HH:mm", with("executionWindow", window("01:00", "5pm")), "executionWindow.endTime"},
		{"a window without an end", with("executionWindow", map[string]any{"startTime": "01:00"}), "executionWindow.endTime"},
		{"a window of zero length", with("executionWindow", window("01:00", "01:00")), "executionWindow"},
		{"a window the cron never fires in", with("executionWindow", window("22:00", "01:00")), "executionWindow"},
		{"a recipient that is not an address", with("notificationSettings", notify(true, "not-an-email")), "notificationSettings.recipients[0]"},
		{"a recipient with a display name", with("notificationSettings", notify(true, "Bob <bob@b.example>")), "notificationSettings.recipients[0]"},
		{"a duplicate recipient", with("notificationSettings", notify(true, "a@b.example", "A@B.example")), "notificationSettings.recipients[1]"},
		{"notifications on failure without recipients", with("notificationSettings", notify(true)), "notificationSettings.recipients"},
		{"an unknown property", with("color", "blue"), "body"},
		{"enabled that is not a boolean", with("enabled", "yes"), "enabled"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused naming "+c.field, func(t *testing.T) {
			status, body, _ := e.raw(http.MethodPost, "/api/v1/schedule/create", "acme", tok, c.body)
			require.Equal(t, http.StatusBadRequest, status, string(body))
			env := requireEnvelope(t, body)
			require.Equal(t, "VALIDATION_FAILED", env.Error.Code)
			var fields []string
			for _, d := range env.Error.Details {
				fields = append(fields, d.Field)
				require.NotEmpty(t, d.Message)
			}
			require.Contains(t, fields, c.field, "message: %s", env.Error.Message)
		})
	}

	t.Run("a body that is not JSON is refused", func(t *testing.T) {
		status, body, _ := e.raw(http.MethodPost, "/api/v1/schedule/create", "acme", tok, `{"scheduleName":`)
		require.Equal(t, http.StatusBadRequest, status, string(body))
		requireEnvelope(t, body)
	})

	t.Run("every refusal reports all the fields at fault at once", func(t *testing.T) {
		b, _ := json.Marshal(map[string]any{"scheduleName": "n", "backupType": "FULL",
			"cronExpression": "0 0 2 * * *", "timezone": "Mars/Olympus"})
		status, body, _ := e.raw(http.MethodPost, "/api/v1/schedule/create", "acme", tok, string(b))
		require.Equal(t, http.StatusBadRequest, status)
		var fields []string
		for _, d := range requireEnvelope(t, body).Error.Details {
			fields = append(fields, d.Field)
		}
		require.ElementsMatch(t, []string{"cronExpression", "timezone"}, fields)
	})

	t.Run("nothing was stored by any refused request", func(t *testing.T) {
		require.Zero(t, e.count("SELECT count(*) FROM hub_backup_schedule"))
		require.Zero(t, e.count("SELECT count(*) FROM sat_backup_schedule_definition"))
	})

	t.Run("an update that breaks a rule is refused and leaves the schedule as it was", func(t *testing.T) {
		s := e.createSchedule(nightly(), as(tok))
		status, body, _ := e.raw(http.MethodPut, "/api/v1/schedule/"+s.ScheduleId.String(), "acme", tok,
			`{"timezone": "Nowhere/Land"}`)
		require.Equal(t, http.StatusBadRequest, status, string(body))
		require.Equal(t, "timezone", requireEnvelope(t, body).Error.Details[0].Field)
		status, body, _ = e.raw(http.MethodPut, "/api/v1/schedule/"+s.ScheduleId.String(), "acme", tok, `{}`)
		require.Equal(t, http.StatusBadRequest, status, "an empty update is refused: %s", body)
		require.Equal(t, 1, e.count("SELECT count(*) FROM sat_backup_schedule_definition"))
	})
}
