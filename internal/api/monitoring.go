package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The monitoring operations are routed, authenticated and validated; they answer 501 until
// the monitoring issues builds them.

// GetSystemHealth answers 501 until it is built.
func (h *Handlers) GetSystemHealth(_ context.Context, _ oapi.GetSystemHealthRequestObject) (oapi.GetSystemHealthResponseObject, error) {
	return nil, notImplemented("getSystemHealth")
}

// GetBackupMetrics answers 501 until it is built.
func (h *Handlers) GetBackupMetrics(_ context.Context, _ oapi.GetBackupMetricsRequestObject) (oapi.GetBackupMetricsResponseObject, error) {
	return nil, notImplemented("getBackupMetrics")
}

// GetPerformanceAnalytics answers 501 until it is built.
func (h *Handlers) GetPerformanceAnalytics(_ context.Context, _ oapi.GetPerformanceAnalyticsRequestObject) (oapi.GetPerformanceAnalyticsResponseObject, error) {
	return nil, notImplemented("getPerformanceAnalytics")
}

// GetSecurityEvents answers 501 until it is built.
func (h *Handlers) GetSecurityEvents(_ context.Context, _ oapi.GetSecurityEventsRequestObject) (oapi.GetSecurityEventsResponseObject, error) {
	return nil, notImplemented("getSecurityEvents")
}

// GetComplianceStatus answers 501 until it is built.
func (h *Handlers) GetComplianceStatus(_ context.Context, _ oapi.GetComplianceStatusRequestObject) (oapi.GetComplianceStatusResponseObject, error) {
	return nil, notImplemented("getComplianceStatus")
}
