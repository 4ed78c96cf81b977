package auth

// Scopes are the permissions that the OpenAPI contract declares per operation.
// A token never carries scopes itself: they are derived from its roles, so that
// changing what a role may do is a code change reviewed here, not a re-issue of
// every token.
const (
	ScopeBackupsRead        = "backups:read"
	ScopeBackupsWrite       = "backups:write"
	ScopeRecoveryRead       = "recovery:read"
	ScopeRecoveryWrite      = "recovery:write"
	ScopeRecoveryApprove    = "recovery:approve"
	ScopeSchedulesRead      = "schedules:read"
	ScopeSchedulesWrite     = "schedules:write"
	ScopeMonitoringRead     = "monitoring:read"
	ScopeAlertsRead         = "alerts:read"
	ScopeAlertsWrite        = "alerts:write"
	ScopeIncidentsRead      = "incidents:read"
	ScopeIncidentsWrite     = "incidents:write"
	ScopeDashboardRead      = "dashboard:read"
	ScopeNotificationsRead  = "notifications:read"
	ScopeNotificationsWrite = "notifications:write"
	ScopeTenantsAdmin       = "tenants:admin"
	ScopeSystemBackup       = "system:backup"
)

// Roles are the values a token may carry in its roles claim. Each role is a
// superset of a smaller one, as documented on ScopesForRoles.
const (
	RoleViewer        = "viewer"
	RoleOperator      = "operator"
	RoleApprover      = "approver"
	RoleAdmin         = "admin"
	RolePlatformAdmin = "platform_admin"
)

// roleScopes is the single source of truth for what each role may do. It is
// built once at start-up and never mutated, so it is safe to read concurrently.
var roleScopes = buildRoleScopes()

func buildRoleScopes() map[string]map[string]bool {
	viewer := []string{
		ScopeBackupsRead,
		ScopeRecoveryRead,
		ScopeSchedulesRead,
		ScopeMonitoringRead,
		ScopeAlertsRead,
		ScopeIncidentsRead,
		ScopeDashboardRead,
		ScopeNotificationsRead,
	}
	operator := append(append([]string{}, viewer...),
		ScopeBackupsWrite,
		ScopeRecoveryWrite,
		ScopeSchedulesWrite,
		ScopeAlertsWrite,
		ScopeIncidentsWrite,
		ScopeNotificationsWrite,
	)
	approver := append(append([]string{}, viewer...), ScopeRecoveryApprove)
	admin := append(append([]string{}, operator...), ScopeRecoveryApprove)
	platformAdmin := append(append([]string{}, admin...), ScopeTenantsAdmin, ScopeSystemBackup)

	set := func(scopes []string) map[string]bool {
		m := make(map[string]bool, len(scopes))
		for _, s := range scopes {
			m[s] = true
		}
		return m
	}
	return map[string]map[string]bool{
		RoleViewer:        set(viewer),
		RoleOperator:      set(operator),
		RoleApprover:      set(approver),
		RoleAdmin:         set(admin),
		RolePlatformAdmin: set(platformAdmin),
	}
}

// ScopesForRoles returns the union of the scopes granted by roles, as a new map
// that the caller may keep or modify.
//
// viewer grants every :read scope; operator adds backups, recovery, schedules,
// alerts, incidents and notifications writes; approver adds recovery:approve to
// viewer; admin is operator plus approver; platform_admin is admin plus
// tenants:admin and system:backup. An unknown role grants nothing and is not an
// error, so that an identity provider can add roles before this service knows
// them without locking anybody out.
func ScopesForRoles(roles []string) map[string]bool {
	scopes := make(map[string]bool)
	for _, role := range roles {
		for scope := range roleScopes[role] {
			scopes[scope] = true
		}
	}
	return scopes
}

// rolesGrant reports whether any of roles grants scope, without allocating;
// it is the hot path of every authorised request.
func rolesGrant(roles []string, scope string) bool {
	for _, role := range roles {
		if roleScopes[role][scope] {
			return true
		}
	}
	return false
}
