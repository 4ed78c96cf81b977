package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The dashboard operations are routed, authenticated and validated; they answer 501 until
// phase 2 builds them.

// GetMonitoringDashboard answers 501 until it is built.
func (h *Handlers) GetMonitoringDashboard(_ context.Context, _ oapi.GetMonitoringDashboardRequestObject) (oapi.GetMonitoringDashboardResponseObject, error) {
	return nil, notImplemented("getMonitoringDashboard")
}

// GetOperationalReport answers 501 until it is built.
func (h *Handlers) GetOperationalReport(_ context.Context, _ oapi.GetOperationalReportRequestObject) (oapi.GetOperationalReportResponseObject, error) {
	return nil, notImplemented("getOperationalReport")
}
