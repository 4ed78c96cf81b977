package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	oapi "github.com/onevault/readiness/gen/api"
	"github.com/onevault/readiness/internal/audit"
	"github.com/onevault/readiness/internal/auth"
	"github.com/onevault/readiness/internal/retention"
	"github.com/onevault/readiness/internal/schedule"
)

// CreateSchedule validates and stores a schedule, answering 201 with its next three fires.
func (h *Handlers) CreateSchedule(ctx context.Context, req oapi.CreateScheduleRequestObject) (oapi.CreateScheduleResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	d := schedule.Definition{
		Name: b.ScheduleName, BackupType: string(b.BackupType), BackupScope: schedule.BackupScopeTenant,
		Cron: b.CronExpression, Timezone: b.Timezone, Retention: retention.Years(h.settings.RetentionYears).String(),
		Enabled: true, Notify: schedule.Notification{Recipients: []string{}},
	}
	if b.BackupScope != nil {
		d.BackupScope = string(*b.BackupScope)
	}
	if b.SchemaName != nil {
		d.SchemaName = *b.SchemaName
	}
	if b.RetentionPeriod != nil {
		d.Retention = *b.RetentionPeriod
	}
	if b.ExecutionWindow != nil {
		d.Window = &schedule.Window{Start: b.ExecutionWindow.StartTime, End: b.ExecutionWindow.EndTime}
	}
	if b.NotificationSettings != nil {
		d.Notify = notification(*b.NotificationSettings)
	}
	if b.Enabled != nil {
		d.Enabled = *b.Enabled
	}
	if err := mayScheduleScope(ctx, d.BackupScope); err != nil {
		return nil, err
	}
	s, err := h.schedules.Create(ctx, t.HK, d, subject(ctx))
	if err != nil {
		return nil, domainError(err, "schedule")
	}
	audit.SetResourceID(ctx, s.ID.String())
	return oapi.CreateSchedule201JSONResponse{Success: true, Data: h.toSchedule(s)}, nil
}

// ListSchedules answers one page of the tenant's schedules, oldest first.
func (h *Handlers) ListSchedules(ctx context.Context, req oapi.ListSchedulesRequestObject) (oapi.ListSchedulesResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	page, size, offset := pageBounds(req.Params.Page, req.Params.PageSize)
	items, total, err := h.schedules.List(ctx, t.HK, req.Params.Enabled, offset, size)
	if err != nil {
		return nil, err
	}
	out := make([]oapi.Schedule, len(items))
	for i, s := range items {
		out[i] = h.toSchedule(s)
	}
	return oapi.ListSchedules200JSONResponse{Success: true,
		Data: oapi.ScheduleList{Schedules: out, Pagination: pagination(page, size, total)}}, nil
}

// GetSchedule answers one schedule; another tenant's is 404.
func (h *Handlers) GetSchedule(ctx context.Context, req oapi.GetScheduleRequestObject) (oapi.GetScheduleResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	s, err := h.schedules.Get(ctx, t.HK, uuid.UUID(req.ScheduleId))
	if err != nil {
		return nil, domainError(err, "schedule")
	}
	return oapi.GetSchedule200JSONResponse{Success: true, Data: h.toSchedule(s)}, nil
}

// UpdateSchedule applies a partial update: absent fields keep their value, an executionWindow
// of null removes the window. The result is validated as a whole and stored as a new version.
func (h *Handlers) UpdateSchedule(ctx context.Context, req oapi.UpdateScheduleRequestObject) (oapi.UpdateScheduleResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	window, removeWindow, err := windowPatch(b.ExecutionWindow)
	if err != nil {
		return nil, err
	}
	if b.BackupScope != nil {
		if err := mayScheduleScope(ctx, string(*b.BackupScope)); err != nil {
			return nil, err
		}
	}
	change := func(d *schedule.Definition) error {
		if b.ScheduleName != nil {
			d.Name = *b.ScheduleName
		}
		if b.BackupType != nil {
			d.BackupType = string(*b.BackupType)
		}
		if b.BackupScope != nil {
			d.BackupScope = string(*b.BackupScope)
			if d.BackupScope != schedule.BackupScopeSchema && b.SchemaName == nil {
				d.SchemaName = "" // a schema name belongs only to SCHEMA scope
			}
		}
		if b.SchemaName != nil {
			d.SchemaName = *b.SchemaName
		}
		if b.CronExpression != nil {
			d.Cron = *b.CronExpression
		}
		if b.Timezone != nil {
			d.Timezone = *b.Timezone
		}
		if b.RetentionPeriod != nil {
			d.Retention = *b.RetentionPeriod
		}
		if removeWindow {
			d.Window = nil
		} else if window != nil {
			d.Window = window
		}
		if b.NotificationSettings != nil {
			d.Notify = notification(*b.NotificationSettings)
		}
		if b.Enabled != nil {
			d.Enabled = *b.Enabled
		}
		return mayScheduleScope(ctx, d.BackupScope) // an existing SYSTEM schedule stays platform_admin's
	}
	s, err := h.schedules.Update(ctx, t.HK, uuid.UUID(req.ScheduleId), change, subject(ctx))
	var refused *Error
	if errors.As(err, &refused) {
		return nil, refused
	}
	if err != nil {
		return nil, domainError(err, "schedule")
	}
	return oapi.UpdateSchedule200JSONResponse{Success: true, Data: h.toSchedule(s)}, nil
}

// DeleteSchedule ends a schedule: its history keeps a last DELETED version.
func (h *Handlers) DeleteSchedule(ctx context.Context, req oapi.DeleteScheduleRequestObject) (oapi.DeleteScheduleResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	id := uuid.UUID(req.ScheduleId)
	cur, err := h.schedules.Get(ctx, t.HK, id)
	if err != nil {
		return nil, domainError(err, "schedule")
	}
	if err := mayScheduleScope(ctx, cur.BackupScope); err != nil {
		return nil, err
	}
	if err := h.schedules.Delete(ctx, t.HK, id, subject(ctx)); err != nil {
		return nil, domainError(err, "schedule")
	}
	return oapi.DeleteSchedule200JSONResponse{Success: true,
		Data: oapi.ScheduleDeletion{ScheduleId: req.ScheduleId, Deleted: true}}, nil
}

// GetScheduleHistory answers every version of a schedule, oldest first, deletion included.
func (h *Handlers) GetScheduleHistory(ctx context.Context, req oapi.GetScheduleHistoryRequestObject) (oapi.GetScheduleHistoryResponseObject, error) {
	t, err := tenant(ctx)
	if err != nil {
		return nil, err
	}
	versions, err := h.schedules.History(ctx, t.HK, uuid.UUID(req.ScheduleId))
	if err != nil {
		return nil, domainError(err, "schedule")
	}
	out := make([]oapi.ScheduleVersion, len(versions))
	for i, v := range versions {
		out[i] = oapi.ScheduleVersion{Version: v.Version, Change: oapi.ScheduleVersionChange(v.Change),
			ChangedAt: v.ChangedAt, ChangedBy: v.ChangedBy, Definition: toDefinition(v.Definition)}
	}
	return oapi.GetScheduleHistory200JSONResponse{Success: true,
		Data: oapi.ScheduleHistory{ScheduleId: req.ScheduleId, Versions: out}}, nil
}

// mayScheduleScope refuses SYSTEM scope to anyone but a platform admin: a SYSTEM backup copies
// every tenant's data.
func mayScheduleScope(ctx context.Context, scope string) error {
	if scope != schedule.BackupScopeSystem {
		return nil
	}
	if p, ok := auth.PrincipalFrom(ctx); ok && p.HasScope(auth.ScopeSystemBackup) {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: "backupScope SYSTEM needs the platform_admin role"}
}

// windowPatch reads the update's executionWindow: absent (nil, false), null (nil, true) or a window.
func windowPatch(raw json.RawMessage) (w *schedule.Window, remove bool, err error) {
	if len(raw) == 0 {
		return nil, false, nil
	}
	if string(raw) == "null" {
		return nil, true, nil
	}
	var ew oapi.ExecutionWindow
	if err := json.Unmarshal(raw, &ew); err != nil {
		return nil, false, BadRequest("executionWindow must be an object or null",
			Detail{Field: "executionWindow", Message: fmt.Sprintf("not an execution window: %v", err)})
	}
	return &schedule.Window{Start: ew.StartTime, End: ew.EndTime}, false, nil
}

func notification(n oapi.NotificationSettings) schedule.Notification {
	out := schedule.Notification{OnSuccess: n.OnSuccess, OnFailure: n.OnFailure, Recipients: []string{}}
	if n.Recipients != nil {
		for _, r := range *n.Recipients {
			out.Recipients = append(out.Recipients, string(r))
		}
	}
	return out
}

func toNotification(n schedule.Notification) oapi.NotificationSettings {
	rs := make([]openapi_types.Email, len(n.Recipients))
	for i, r := range n.Recipients {
		rs[i] = openapi_types.Email(r)
	}
	return oapi.NotificationSettings{OnSuccess: n.OnSuccess, OnFailure: n.OnFailure, Recipients: &rs}
}

func toWindow(w *schedule.Window) *oapi.ExecutionWindow {
	if w == nil {
		return nil
	}
	return &oapi.ExecutionWindow{StartTime: w.Start, EndTime: w.End}
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toDefinition(d schedule.Definition) oapi.ScheduleDefinition {
	return oapi.ScheduleDefinition{ScheduleName: d.Name, BackupType: oapi.BackupType(d.BackupType),
		BackupScope: oapi.BackupScope(d.BackupScope), SchemaName: optionalString(d.SchemaName),
		CronExpression: d.Cron, Timezone: d.Timezone, RetentionPeriod: d.Retention,
		ExecutionWindow: toWindow(d.Window), NotificationSettings: toNotification(d.Notify), Enabled: d.Enabled}
}

// toSchedule renders a stored schedule with its next three fires inside its window, in its own
// zone (computed now, so they are never stale); a disabled schedule has none.
func (h *Handlers) toSchedule(s schedule.Schedule) oapi.Schedule {
	next := []time.Time{}
	if s.Enabled {
		if loc, err := schedule.LoadLocation(s.Timezone); err == nil {
			if runs, err := schedule.NextRuns(s.Cron, loc, s.Window, h.now(), 3); err == nil {
				next = runs
			}
		}
	}
	var nextAt *time.Time
	if len(next) > 0 {
		nextAt = &next[0]
	}
	return oapi.Schedule{
		ScheduleId: openapi_types.UUID(s.ID), ScheduleName: s.Name, BackupType: oapi.BackupType(s.BackupType),
		BackupScope: oapi.BackupScope(s.BackupScope), SchemaName: optionalString(s.SchemaName),
		CronExpression: s.Cron, Timezone: s.Timezone, RetentionPeriod: s.Retention,
		ExecutionWindow: toWindow(s.Window), NotificationSettings: toNotification(s.Notify), Enabled: s.Enabled,
		NextRunTimes: next, NextRunAt: nextAt, LastRunAt: s.LastRunAt, LastStatus: s.LastStatus,
		Version: s.Version, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy, UpdatedAt: s.UpdatedAt, UpdatedBy: s.UpdatedBy,
	}
}
