package api

import (
	"context"

	oapi "github.com/onevault/readiness/gen/api"
)

// The alerts operations are routed, authenticated and validated; they answer 501 until
// phase 2 builds them.

// CreateAlertDefinition answers 501 until it is built.
func (h *Handlers) CreateAlertDefinition(_ context.Context, _ oapi.CreateAlertDefinitionRequestObject) (oapi.CreateAlertDefinitionResponseObject, error) {
	return nil, notImplemented("createAlertDefinition")
}

// GetActiveAlerts answers 501 until it is built.
func (h *Handlers) GetActiveAlerts(_ context.Context, _ oapi.GetActiveAlertsRequestObject) (oapi.GetActiveAlertsResponseObject, error) {
	return nil, notImplemented("getActiveAlerts")
}

// AcknowledgeAlert answers 501 until it is built.
func (h *Handlers) AcknowledgeAlert(_ context.Context, _ oapi.AcknowledgeAlertRequestObject) (oapi.AcknowledgeAlertResponseObject, error) {
	return nil, notImplemented("acknowledgeAlert")
}

// ResolveAlert answers 501 until it is built.
func (h *Handlers) ResolveAlert(_ context.Context, _ oapi.ResolveAlertRequestObject) (oapi.ResolveAlertResponseObject, error) {
	return nil, notImplemented("resolveAlert")
}
