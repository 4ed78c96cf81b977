package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The notifications operations are routed, authenticated and validated; they answer 501 until
// phase 2 builds them.

// CreateNotificationChannel answers 501 until it is built.
func (h *Handlers) CreateNotificationChannel(_ context.Context, _ oapi.CreateNotificationChannelRequestObject) (oapi.CreateNotificationChannelResponseObject, error) {
	return nil, notImplemented("createNotificationChannel")
}

// TestNotificationChannel answers 501 until it is built.
func (h *Handlers) TestNotificationChannel(_ context.Context, _ oapi.TestNotificationChannelRequestObject) (oapi.TestNotificationChannelResponseObject, error) {
	return nil, notImplemented("testNotificationChannel")
}

// GetNotificationHistory answers 501 until it is built.
func (h *Handlers) GetNotificationHistory(_ context.Context, _ oapi.GetNotificationHistoryRequestObject) (oapi.GetNotificationHistoryResponseObject, error) {
	return nil, notImplemented("getNotificationHistory")
}
